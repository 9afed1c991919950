package sqlserver

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSplitBatches(t *testing.T) {
	t.Parallel()

	type want struct {
		SQL   string
		Line  int
		Count int
	}
	cases := []struct {
		name   string
		script string
		want   []want
	}{
		{
			name:   "no GO: one batch",
			script: "SELECT 1;\nSELECT 2;\n",
			want:   []want{{"SELECT 1;\nSELECT 2;\n", 1, 1}},
		},
		{
			name:   "GO on its own line",
			script: "SELECT 1;\nGO\nSELECT 2;\n",
			want:   []want{{"SELECT 1;\n", 1, 1}, {"SELECT 2;\n", 3, 1}},
		},
		{
			name:   "case-insensitive",
			script: "SELECT 1;\ngo\nSELECT 2;\nGo\nSELECT 3;",
			want:   []want{{"SELECT 1;\n", 1, 1}, {"SELECT 2;\n", 3, 1}, {"SELECT 3;", 5, 1}},
		},
		{
			name:   "leading and trailing whitespace",
			script: "SELECT 1;\n  \tGO \t \nSELECT 2;\n",
			want:   []want{{"SELECT 1;\n", 1, 1}, {"SELECT 2;\n", 3, 1}},
		},
		{
			name:   "repeat count",
			script: "INSERT INTO t DEFAULT VALUES;\nGO 5\nSELECT 2;\n",
			want:   []want{{"INSERT INTO t DEFAULT VALUES;\n", 1, 5}, {"SELECT 2;\n", 3, 1}},
		},
		{
			name:   "comment after GO",
			script: "SELECT 1;\nGO -- end of the stub\nSELECT 2;\nGO 2 -- twice\n",
			want:   []want{{"SELECT 1;\n", 1, 1}, {"SELECT 2;\n", 3, 2}},
		},
		{
			name:   "comment glued to GO",
			script: "SELECT 1;\nGO--x\nSELECT 2;\n",
			want:   []want{{"SELECT 1;\n", 1, 1}, {"SELECT 2;\n", 3, 1}},
		},
		{
			name:   "CRLF line ends",
			script: "SELECT 1;\r\nGO\r\nSELECT 2;\r\ngo 3\r\n",
			want:   []want{{"SELECT 1;\r\n", 1, 1}, {"SELECT 2;\r\n", 3, 3}},
		},
		{
			name:   "GO at the end without a newline",
			script: "SELECT 1;\nGO",
			want:   []want{{"SELECT 1;\n", 1, 1}},
		},
		{
			name:   "GO first and repeated: empty batches dropped",
			script: "GO\n\nGO\nSELECT 1;\nGO\n\n  \nGO\n",
			want:   []want{{"SELECT 1;\n", 4, 1}},
		},
		{
			name:   "batches of only comments are dropped",
			script: "-- header\n/* block\n comment */\nGO\nSELECT 1;\n",
			want:   []want{{"SELECT 1;\n", 5, 1}},
		},
		{
			name:   "GO inside a string is text",
			script: "SELECT N'first line\nGO\nlast line';\nGO\nSELECT 2;\n",
			want:   []want{{"SELECT N'first line\nGO\nlast line';\n", 1, 1}, {"SELECT 2;\n", 5, 1}},
		},
		{
			name:   "escaped quotes keep the string open",
			script: "SELECT 'it''s\nGO\nstill a string';\nGO\nSELECT 2;",
			want:   []want{{"SELECT 'it''s\nGO\nstill a string';\n", 1, 1}, {"SELECT 2;", 5, 1}},
		},
		{
			name:   "GO inside a block comment is text",
			script: "SELECT 1; /* a comment\nGO\n*/\nSELECT 2;\nGO\n",
			want:   []want{{"SELECT 1; /* a comment\nGO\n*/\nSELECT 2;\n", 1, 1}},
		},
		{
			name:   "nested block comments",
			script: "/* outer /* inner */\nGO\nstill outer */\nSELECT 1;\nGO\nSELECT 2;",
			want:   []want{{"/* outer /* inner */\nGO\nstill outer */\nSELECT 1;\n", 1, 1}, {"SELECT 2;", 6, 1}},
		},
		{
			name:   "a quote inside a line comment opens nothing",
			script: "SELECT 1; -- don't\nGO\nSELECT 2;",
			want:   []want{{"SELECT 1; -- don't\n", 1, 1}, {"SELECT 2;", 3, 1}},
		},
		{
			name:   "a quote inside a block comment opens nothing",
			script: "/* it's */ SELECT 1;\nGO\nSELECT 2;",
			want:   []want{{"/* it's */ SELECT 1;\n", 1, 1}, {"SELECT 2;", 3, 1}},
		},
		{
			name:   "bracketed and quoted identifiers",
			script: "SELECT 1 AS [a\nGO\n]]b], 2 AS \"x\nGO\ny\";\nGO\nSELECT 3;",
			want:   []want{{"SELECT 1 AS [a\nGO\n]]b], 2 AS \"x\nGO\ny\";\n", 1, 1}, {"SELECT 3;", 7, 1}},
		},
		{
			name:   "GO after text on a line is not a separator",
			script: "SELECT 1 GO\nSELECT 2;\n",
			want:   []want{{"SELECT 1 GO\nSELECT 2;\n", 1, 1}},
		},
		{
			name:   "words starting with GO are statements",
			script: "GOTO done;\nGO\ndone:\nSELECT 1;",
			want:   []want{{"GOTO done;\n", 1, 1}, {"done:\nSELECT 1;", 3, 1}},
		},
		{
			name:   "the portable procedure form",
			script: "IF OBJECT_ID(N'hermod.X', N'P') IS NULL EXEC(N'CREATE PROCEDURE hermod.X AS RETURN 0');\nGO\nALTER PROCEDURE hermod.X AS\nBEGIN\n    SELECT N'GO';\nEND;\n",
			want: []want{
				{"IF OBJECT_ID(N'hermod.X', N'P') IS NULL EXEC(N'CREATE PROCEDURE hermod.X AS RETURN 0');\n", 1, 1},
				{"ALTER PROCEDURE hermod.X AS\nBEGIN\n    SELECT N'GO';\nEND;\n", 3, 1},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()

			got, err := splitBatches(tc.script)
			require.NoError(t, err)
			gotw := make([]want, len(got))
			for i, b := range got {
				gotw[i] = want{b.SQL, b.Line, b.Count}
			}
			if tc.want == nil {
				tc.want = []want{}
			}
			require.Equal(t, tc.want, gotw)
		})
	}
}

func TestSplitBatchesErrors(t *testing.T) {
	t.Parallel()

	cases := []struct {
		name    string
		script  string
		wantErr string
	}{
		{"text after GO", "SELECT 1;\nGO SELECT 2;\n", "line 2"},
		{"GO with a semicolon and text", "SELECT 1;\nGO 2 x\n", "line 2"},
		{"zero count", "SELECT 1;\nGO 0\n", "positive"},
		{"count overflow", "SELECT 1;\nGO 99999999999999999999\n", "positive"},
		{"unterminated string", "SELECT 1;\nSELECT N'abc\nGO\n", "line 2: string is never closed"},
		{"unterminated block comment", "SELECT 1;\n/* no end\nGO\nSELECT 2;", "line 2: block comment is never closed"},
		{"unterminated bracket", "SELECT [abc\n", "line 1: bracketed identifier"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()

			_, err := splitBatches(tc.script)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.wantErr)
		})
	}
}

func TestSplitBatchesEmpty(t *testing.T) {
	t.Parallel()

	for _, script := range []string{"", "\n\n", "GO\nGO\n", "-- only a comment\n", "/* x */"} {
		got, err := splitBatches(script)
		require.NoError(t, err)
		require.Empty(t, got, "%q", script)
	}
}

// TestSplitBatchesRoundTrip checks that splitting keeps every byte of every
// batch: joined back with GO lines they give the script again.
func TestSplitBatchesRoundTrip(t *testing.T) {
	t.Parallel()

	parts := []string{
		"CREATE TABLE t (a NVARCHAR(10));\n",
		"INSERT INTO t VALUES (N'GO');\n-- GO\n/* GO */\n",
		"SELECT a FROM t;\n",
	}
	script := strings.Join(parts, "GO\n")
	got, err := splitBatches(script)
	require.NoError(t, err)
	require.Len(t, got, len(parts))
	for i, b := range got {
		require.Equal(t, parts[i], b.SQL)
	}
}
