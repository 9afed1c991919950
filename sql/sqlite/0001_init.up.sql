-- placeholder: the sqlite store replaces this file
SELECT 1;
