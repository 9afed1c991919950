package sqlserver

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/hermod-sms/hermod/store"
	"github.com/hermod-sms/hermod/store/internal/dbsql"
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
	errInvalidColumn        = 207   // invalid column name
	errInvalidObject        = 208   // invalid object name
	errNoProcedure          = 2812  // could not find stored procedure
	errMultiPartIdentifier  = 4104  // the multi-part identifier could not be bound
	errPermissionDenied     = 229   // the permission was denied on the object
	errPermissionDeniedDB   = 262   // the permission was denied in the database
	errUserRaised           = 50000 // RAISERROR or THROW with a message text
	// babelfishNumbers: Babelfish numbers the PostgreSQL errors it does
	// not translate from here (33557097, ...).
	babelfishNumbers = 33_000_000
)

// outageNumbers are SQL Server errors of severity 16 or lower that mean the
// server cannot serve now, whatever the statement: every other error of
// severity 16 or lower is an error of the statement (see statementFix).
// Severities 17 and above (no resources, fatal errors that end the
// connection) are outages too.
var outageNumbers = map[int32]string{
	errDeadlockVictim: "deadlock victim",
	errLockTimeout:    "lock request timeout",
	// A login that fails, or whose default database cannot be opened,
	// fails every statement until the URL or the server is fixed: the
	// database is unreachable for this node, and /readyz says so.
	18456: "login failed",
	4060:  "cannot open the database of the login",
	// The database moved or is not available for a moment: a failover,
	// an availability group secondary, an Azure SQL reconfiguration.
	976:   "database not accessible on an availability group secondary",
	978:   "database readable only with read-intent on this replica",
	983:   "availability replica not in a role that can serve",
	3906:  "the database is read-only",
	40613: "Azure SQL: database not currently available",
	40197: "Azure SQL: the service failed to process the request",
	40501: "Azure SQL: the service is busy",
	10928: "Azure SQL: resource limit reached",
	10929: "Azure SQL: minimum resources not guaranteed",
	49918: "Azure SQL: not enough resources",
	49919: "Azure SQL: too many create or update operations",
	49920: "Azure SQL: too many operations",
}

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
		if dbsql.IsConversion(err) {
			return store.Statement(fmt.Errorf("%s: %w", doing, err), store.FixData)
		}
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
		return store.Statement(fmt.Errorf("%s: %w", doing, err), "the transaction ran under SNAPSHOT isolation, which Hermod does not support: remove ALLOW_SNAPSHOT_ISOLATION defaults from the login or connection")
	}
	if fix, ok := statementFix(err, me); ok {
		return store.Statement(fmt.Errorf("%s: %w", doing, err), fix)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// statementFix reports whether me, the last error the server sent for err,
// is the error of a statement rather than of the server or the connection,
// and how to fix it. A statement error has a severity of 16 or lower (11
// to 16 are "errors the user can correct") and is not in outageNumbers: a
// syntax error (102, 156), an unknown column or object (207, 208, 4104), a
// conversion (245, 8114), a constraint, an error raised by a trigger or
// procedure (50000 and above), and the generic numbers Babelfish gives the
// PostgreSQL errors it does not translate (33557097 for "missing
// FROM-clause entry", ...). A fatal ServerError, which ends the
// connection, is an outage whatever its number.
func statementFix(err error, me mssql.Error) (fix string, ok bool) {
	var fatal mssql.ServerError
	if errors.As(err, &fatal) || me.Class > 16 {
		return "", false
	}
	if _, outage := outageNumbers[me.Number]; outage {
		return "", false
	}
	switch me.Number {
	case errInvalidColumn, errInvalidObject, errNoProcedure, errMultiPartIdentifier:
		return store.FixSchema, true
	case errPermissionDenied, errPermissionDeniedDB:
		return store.FixPermission, true
	case 245, // conversion failed
		8114, // error converting data type
		8115, // arithmetic overflow
		8134: // divide by zero
		return store.FixData, true
	}
	if me.Number >= errUserRaised && me.Number < babelfishNumbers {
		return store.FixRaised, true
	}
	if me.Number >= babelfishNumbers {
		// PostgreSQL's message in words: the number says nothing.
		switch msg := strings.ToLower(me.Message); {
		case strings.Contains(msg, "does not exist"):
			return store.FixSchema, true
		case strings.Contains(msg, "invalid input syntax"), strings.Contains(msg, "out of range"):
			return store.FixData, true
		case strings.Contains(msg, "permission denied"):
			return store.FixPermission, true
		}
	}
	return store.FixServer, true
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
// run again: a deadlock victim, a lock timeout, and Babelfish's failure of
// the first run of a cached UPDATE ... OUTPUT INTO after its plan was
// invalidated (a trigger or index created on the table): "missing
// FROM-clause entry for table """, with an empty table name; the next run
// plans it anew and works.
func isRetryable(err error) bool {
	var me mssql.Error
	if !errors.As(err, &me) {
		return false
	}
	return me.Number == errDeadlockVictim || me.Number == errLockTimeout ||
		strings.Contains(me.Message, `missing FROM-clause entry for table ""`)
}
