package docblocks

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Result is one result set an example returned, every value as text: NULL
// is "NULL", a time is "2006-01-02 15:04:05.000". Column names are in lower
// case (Babelfish returns some in lower case).
type Result struct {
	Columns []string
	Rows    [][]string
}

// Text formats one value as Result holds it.
func Text(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case []byte:
		if x == nil {
			return "NULL"
		}
		return string(x)
	case time.Time:
		return x.Format("2006-01-02 15:04:05.000")
	default:
		return fmt.Sprint(x)
	}
}

// Example is what a backend's test knows about one documented example.
type Example struct {
	// Setup creates what the example assumes the reader already has (a
	// table of their own, a channel it names, a message it reads): test
	// setup, not part of the example. Optional.
	Setup func(t *testing.T)
	// Check asserts that the example had its effect; results are the
	// result sets it returned, in order. Required: an example that runs
	// but does nothing must fail.
	Check func(t *testing.T, results []Result)
	// Skip, when not "", names the feature the server under test lacks:
	// the example is not run (it is still grammar-checked).
	Skip string
}

// Run runs the examples in order, each in a subtest named after it: Setup,
// then run (which executes the block as a user would and returns its result
// sets), then Check. It fails when a block has no Example, when an Example
// has no block, and when there is no block at all.
func Run(t *testing.T, blocks []Block, examples map[string]Example, run func(t *testing.T, b Block) ([]Result, error)) {
	t.Helper()
	if len(blocks) == 0 {
		t.Fatal("no SQL example found in the documentation: the extraction is broken")
	}
	names := map[string]bool{}
	for _, b := range blocks {
		names[b.Name] = true
	}
	for name := range examples {
		if !names[name] {
			t.Errorf("the test has an Example %q, but the documentation has no such block for this backend (renamed or removed?)", name)
		}
	}
	for _, b := range blocks {
		t.Run(b.Name, func(t *testing.T) {
			ex, ok := examples[b.Name]
			if !ok {
				t.Fatalf("%s has no Example in this test: add its setup and the assertions of its effect", b)
			}
			if ex.Check == nil {
				t.Fatalf("%s: its Example has no Check", b)
			}
			if ex.Skip != "" {
				t.Skipf("%s not run: %s (the T-SQL grammar check in sql/tsqlcheck still covers it)", b, ex.Skip)
			}
			if ex.Setup != nil {
				ex.Setup(t)
			}
			results, err := run(t, b)
			if err != nil {
				t.Fatalf("%s fails as written: %v\n%s", b, err, numbered(b))
			}
			ex.Check(t, results)
		})
	}
}

// numbered returns the block's SQL with the documentation's line numbers.
func numbered(b Block) string {
	var sb strings.Builder
	for i, line := range strings.Split(strings.TrimSuffix(b.SQL, "\n"), "\n") {
		fmt.Fprintf(&sb, "%5d  %s\n", b.Line+i, line)
	}
	return sb.String()
}

// Collect reads every result set of rows (a script's, as database/sql
// returns them) and closes rows. Result sets without columns (the counts of
// INSERT, UPDATE, ...) are left out.
func Collect(rows *sql.Rows) ([]Result, error) {
	defer rows.Close()
	var out []Result
	for {
		cols, err := rows.Columns()
		if err != nil {
			return nil, err
		}
		res := Result{}
		for _, c := range cols {
			res.Columns = append(res.Columns, strings.ToLower(c))
		}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				return nil, err
			}
			row := make([]string, len(cols))
			for i, v := range vals {
				row[i] = Text(v)
			}
			res.Rows = append(res.Rows, row)
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if len(cols) > 0 {
			out = append(out, res)
		}
		if !rows.NextResultSet() {
			break
		}
	}
	return out, rows.Err()
}
