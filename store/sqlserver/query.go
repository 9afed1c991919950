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

// chunks splits n items into runs that each use at most maxParams
// parameters at perItem parameters per item, and at most maxItems items.
func chunks(n, perItem, maxItems int) [][2]int {
	size := maxParams / perItem
	if maxItems > 0 && size > maxItems {
		size = maxItems
	}
	if size < 1 {
		size = 1
	}
	var out [][2]int
	for start := 0; start < n; start += size {
		end := min(start+size, n)
		out = append(out, [2]int{start, end})
	}
	return out
}
