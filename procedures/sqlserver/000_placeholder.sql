-- placeholder: the sqlserver store replaces this file
SELECT 1;
