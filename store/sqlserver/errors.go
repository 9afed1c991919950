package sqlserver

import (
	"errors"
	"fmt"
	"regexp"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/hermod-sms/hermod/store"
)

// SQL Server error numbers the store maps to store errors.
const (
	errDuplicateKey         = 2627 // violation of a PRIMARY KEY or UNIQUE constraint
	errDuplicateIndex       = 2601 // duplicate key row in a unique index
	errNullColumn           = 515  // cannot insert NULL into a NOT NULL column
	errConstraint           = 547  // a CHECK or FOREIGN KEY constraint failed
	errTruncated            = 2628 // string or binary data would be truncated (2019+ message)
	errTruncatedOld         = 8152 // the same, before SQL Server 2019
	errProcInvalidArgument  = 50001
	errProcNotFound         = 50004
	errProcConflict         = 50009
	errDeadlockVictim       = 1205
	errLockTimeout          = 1222
	errSnapshotUpdateFailed = 3960
)

var (
	reColumn     = regexp.MustCompile(`column '([^']+)'`)
	reConstraint = regexp.MustCompile(`(?:constraint|index) ["']([^"']+)["']`)
	reObject     = regexp.MustCompile(`(?:table|object) ["']([^"']+)["']`)
)

// constraintHints says how to fix a row that a named constraint refused.
var constraintHints = map[string]string{
	"UX_Messages_ClientReference": "a message with this ClientReference exists already: reuse its ID or choose another ClientReference",
	"UQ_Channels_Name":            "a channel with this Name exists already: choose another Name or update that channel",
	"UQ_ApiKeys_Name":             "an API key with this Name exists already: choose another Name or revoke that key",
	"UQ_ApiKeys_Hash":             "an API key with this Hash exists already: generate a new key",
	"PK_Options":                  "the option exists already",
	"PK_Nodes":                    "a node with this Name is registered already",
	"PK_Leaders":                  "the leadership row exists already",
	"PK_MessageParts":             "the part exists already: each PartNumber once per message",
	"CK_Messages_ToAddress":       "ToAddress must not be empty: give the recipient's number",
	"CK_Messages_Direction":       "Direction must be OUT or IN",
	"CK_Messages_Status":          "Status must be one of the statuses of docs/schema.md (SCHEDULED, QUEUED, SENDING, SENT, ...)",
	"CK_MessageParts_Status":      "a part's Status must be SENT, DELIVERED or NOTDELIVERED",
	"CK_MessageParts_PartNumber":  "PartNumber is 1-based: give 1 for the first part",
	"CK_PendingReports_Status":    "a delivery report's Status must be DELIVERED or NOTDELIVERED",
	"CK_Channels_Name":            "a channel needs a Name",
	"CK_Channels_Type":            "a channel needs a Type (simulator, smpp, http, ...)",
	"CK_ApiKeys_Name":             "an API key needs a Name",
	"CK_ApiKeys_Hash":             "an API key needs the Hash of its secret",
}

// mapError wraps a database error with what the store was doing, and maps
// the SQL Server errors that mean "your input" to store.ErrConflict and
// store.ErrInvalid, naming the column or constraint and how to fix it. Both
// the store error and the driver's error stay reachable with errors.Is/As.
// mapError(nil, ...) is nil.
func mapError(err error, doing string) error {
	if err == nil {
		return nil
	}
	var me mssql.Error
	if !errors.As(err, &me) {
		return fmt.Errorf("%s: %w", doing, err)
	}
	switch me.Number {
	case errDuplicateKey, errDuplicateIndex:
		return fmt.Errorf("%s: %s: %w (%w)", doing, explain(me, "the row exists already"), store.ErrConflict, err)
	case errNullColumn:
		col := submatch(reColumn, me.Message)
		what := "a required column is NULL: give every NOT NULL column of docs/schema.md a value"
		if col != "" {
			what = fmt.Sprintf("column %s may not be NULL: give %s a value", col, col)
		}
		return fmt.Errorf("%s: %s: %w (%w)", doing, what, store.ErrInvalid, err)
	case errConstraint:
		return fmt.Errorf("%s: %s: %w (%w)", doing, explain(me, "a constraint of docs/schema.md refused the value"), store.ErrInvalid, err)
	case errTruncated, errTruncatedOld:
		col := submatch(reColumn, me.Message)
		what := "a value is longer than its column allows: see the sizes in docs/schema.md"
		if col != "" {
			what = fmt.Sprintf("the value for %s is longer than the column allows: shorten it (sizes in docs/schema.md)", col)
		}
		return fmt.Errorf("%s: %s: %w (%w)", doing, what, store.ErrInvalid, err)
	case errProcInvalidArgument:
		return fmt.Errorf("%s: %w (%w)", doing, store.ErrInvalid, err)
	case errProcNotFound:
		return fmt.Errorf("%s: %w (%w)", doing, store.ErrNotFound, err)
	case errProcConflict:
		return fmt.Errorf("%s: %w (%w)", doing, store.ErrConflict, err)
	case errSnapshotUpdateFailed:
		return fmt.Errorf("%s: the transaction ran under SNAPSHOT isolation, which Hermod does not support: remove ALLOW_SNAPSHOT_ISOLATION defaults from the login or connection: %w", doing, err)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// explain names the constraint or index in a 2627/2601/547 message, with its
// hint when the store knows it.
func explain(me mssql.Error, fallback string) string {
	name := submatch(reConstraint, me.Message)
	col := submatch(reColumn, me.Message)
	obj := submatch(reObject, me.Message)
	hint, ok := constraintHints[name]
	switch {
	case ok:
		return fmt.Sprintf("%s (%s)", hint, name)
	case name != "" && col != "":
		return fmt.Sprintf("%s: column %s, constraint %s", fallback, col, name)
	case name != "" && obj != "":
		return fmt.Sprintf("%s: %s on %s", fallback, name, obj)
	case name != "":
		return fmt.Sprintf("%s: %s", fallback, name)
	}
	return fallback
}

func submatch(re *regexp.Regexp, s string) string {
	m := re.FindStringSubmatch(s)
	if m == nil {
		return ""
	}
	return m[1]
}

// isDuplicate reports a unique key violation (2627, 2601).
func isDuplicate(err error) bool {
	var me mssql.Error
	return errors.As(err, &me) && (me.Number == errDuplicateKey || me.Number == errDuplicateIndex)
}

// isRetryable reports errors after which the whole transaction can simply
// run again: a deadlock victim, a lock timeout.
func isRetryable(err error) bool {
	var me mssql.Error
	return errors.As(err, &me) && (me.Number == errDeadlockVictim || me.Number == errLockTimeout)
}
