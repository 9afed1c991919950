-- Reverts version 2.
ALTER TABLE Messages DROP COLUMN IF EXISTS StatusCallbackMask;
ALTER TABLE Messages DROP COLUMN IF EXISTS StatusCallback;
