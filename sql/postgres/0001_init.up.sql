-- placeholder: the postgres store replaces this file
SELECT 1;
