package sqlserver

import (
	"strconv"
	"strings"
)

// args collects the parameters of a statement built at run time and names
// them @p1, @p2, ... in order, as go-mssqldb numbers positional arguments.
type args struct {
	vals []any
}

// add appends v and returns its placeholder.
func (a *args) add(v any) string {
	a.vals = append(a.vals, v)
	return "@p" + strconv.Itoa(len(a.vals))
}

// batchPrefix starts every multi-statement batch: no row-count messages
// between result sets, and any error aborts the batch and the transaction
// (the Go side then rolls back), instead of SQL Server's default of running
// the next statement after a failed one.
// It declares @now, the batch's one "now", and @stamp, @now as Trace
// stamps it.
const batchPrefix = "SET NOCOUNT ON;\nSET XACT_ABORT ON;\nDECLARE @now DATETIME2(3) = SYSUTCDATETIME();\n" +
	"DECLARE @stamp NVARCHAR(23) = " + stampNow + ";\n"

// stampNow is T-SQL for @now as "2006-01-02 15:04:05.000", milliseconds
// always three digits (NULL when @now is NULL). CONVERT style 121 would do
// on SQL Server, but Babelfish drops trailing zeros of the fraction
// ("15:04:05.1").
const stampNow = "CONVERT(NVARCHAR(19), @now, 120) + N'.' + RIGHT(N'00' + CONVERT(NVARCHAR(3), DATEPART(MILLISECOND, @now)), 3)"

// stamp is stampNow for the DATETIME2 expression expr.
func stamp(expr string) string {
	return strings.ReplaceAll(stampNow, "@now", expr)
}

// traceLine is T-SQL for one Trace line, "2006-01-02 15:04:05.000 STATUS
// text" and a line feed, stamped with @stamp (which batchPrefix declares).
// status and text are T-SQL expressions.
func traceLine(status, text string) string {
	return "@stamp + N' ' + " + status + " + N' ' + " + text + " + NCHAR(10)"
}

// appendTrace is T-SQL for the Trace column with traceLine appended.
func appendTrace(alias, status, text string) string {
	return alias + ".Trace + " + traceLine(status, text)
}

// Statements that carry a list of rows (VALUES lists of inserts, send
// results, reports) are padded to a bucket size, the next power of two,
// with rows that the statement removes or that match nothing. The text of
// a statement then depends on its bucket only, not on the exact count: a
// few texts per statement instead of one per count. SQL Server keeps one
// cached plan per text; Babelfish compiles every new text in every session,
// which costs it up to a second, so without buckets a busy node would
// compile almost every batch.

// bucket is the number of rows a list of n rows is padded to: the next
// power of two (1 for 0 or 1).
func bucket(n int) int {
	b := 1
	for b < n {
		b <<= 1
	}
	return b
}

// chunks splits n items into runs that each use at most maxParams
// parameters at perItem parameters per item, and at most maxItems items,
// even when padded to their bucket: a run holds a power of two of items.
func chunks(n, perItem, maxItems int) [][2]int {
	size := maxParams / perItem
	if maxItems > 0 && size > maxItems {
		size = maxItems
	}
	if size < 1 {
		size = 1
	}
	for size&(size-1) != 0 {
		size &= size - 1 // the largest power of two that fits
	}
	var out [][2]int
	for start := 0; start < n; start += size {
		end := min(start+size, n)
		out = append(out, [2]int{start, end})
	}
	return out
}
