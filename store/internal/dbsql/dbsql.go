// Package dbsql knows the errors that the standard library's database/sql
// makes itself, for the backends built on it (store/sqlite,
// store/sqlserver).
package dbsql

import "strings"

// conversionPrefixes begin the errors database/sql returns when a value
// does not convert: a column that does not scan into its Go type (Rows.Scan,
// Row.Scan), a Go argument the driver does not take, a row with another
// number of columns than the Scan has destinations. database/sql has no
// types for them, only these messages, stable since Go 1.
var conversionPrefixes = []string{
	"sql: Scan error on column",
	"sql: converting argument",
	"sql: expected ",
}

// IsConversion reports whether err, or an error it wraps, is database/sql
// failing to convert a statement's arguments or results: the statement ran
// (or would have run), the data or the code is wrong, and the connection is
// fine.
func IsConversion(err error) bool {
	for e := err; e != nil; {
		msg := e.Error()
		for _, p := range conversionPrefixes {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			e = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, inner := range u.Unwrap() {
				if IsConversion(inner) {
					return true
				}
			}
			return false
		default:
			return false
		}
	}
	return false
}
