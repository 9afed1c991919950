-- Version 2: the application's status callback (Kannel's dlr-url and
-- dlr-mask). StatusCallback is the URL to call when the message reaches a
-- status StatusCallbackMask selects; StatusCallbackMask holds Kannel's
-- dlr-mask bits (1 delivered, 2 not delivered, 8 sent, 16 failed), NULL for
-- every final status. See docs/schema.md and docs/api.md.
ALTER TABLE Messages ADD COLUMN StatusCallback TEXT;
ALTER TABLE Messages ADD COLUMN StatusCallbackMask INTEGER;
