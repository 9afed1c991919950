-- Reverts version 2 (SQLite 3.35+ drops columns).
ALTER TABLE Messages DROP COLUMN StatusCallbackMask;
ALTER TABLE Messages DROP COLUMN StatusCallback;
