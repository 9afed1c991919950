// Package tsqlcheck syntax-checks Hermod's T-SQL with a real T-SQL grammar.
//
// No SQL Server runs where Hermod's tests usually run, so every .sql file of
// the SQL Server backend (the migrations under sql/sqlserver, the repeatable
// scripts under procedures/sqlserver, and the statements the store sends,
// exported by store/sqlserver's tests to store/sqlserver/testdata/statements)
// and every SQL Server example of the documentation (internal/docblocks)
// is parsed here with github.com/bytebase/tsql-parser, an ANTLR grammar of
// T-SQL that understands GO batch separators. A syntax error fails the test
// with the file, line and column. The same pass rejects the constructs the
// portable dialect forbids (MERGE, CREATE OR ALTER, WAITFOR, SNAPSHOT
// isolation, sp_sequence_get_range, ROWVERSION, UPDATE or DELETE through a
// CTE or derived table), because Babelfish does not have them.
//
// The package holds only tests, so the parser (large, and carrying the
// grammars-v4 MIT licence but no licence file of its own) never enters the
// hermod binary. Its generated parser takes about a minute to compile cold:
// keep every use of it in this one package.
package tsqlcheck

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/antlr4-go/antlr/v4"
	tsqlparser "github.com/bytebase/tsql-parser"
	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/internal/docblocks"
)

// sqlDirs are the folders whose .sql files are checked, relative to this
// package. Each must exist and hold at least one .sql file.
var sqlDirs = []string{
	"../sqlserver",
	"../../procedures/sqlserver",
	"../../store/sqlserver/testdata/statements",
}

// syntaxError is one error reported by the lexer or the parser.
type syntaxError struct {
	Line   int
	Column int // 0-based, as ANTLR counts
	Msg    string
}

// errorCollector is an antlr.ErrorListener that keeps every syntax error.
type errorCollector struct {
	*antlr.DefaultErrorListener
	errs []syntaxError
}

func (c *errorCollector) SyntaxError(_ antlr.Recognizer, _ interface{}, line, column int, msg string, _ antlr.RecognitionException) {
	// ANTLR lists every token it would have accepted: often hundreds.
	if i := strings.Index(msg, " expecting {"); i >= 0 && len(msg) > i+160 {
		msg = msg[:i+160] + "...}"
	}
	c.errs = append(c.errs, syntaxError{Line: line, Column: column, Msg: msg})
}

// parse parses one T-SQL script (GO batches allowed) in LL prediction mode
// (SLL reports false errors on this grammar) and returns its syntax errors
// and its tokens.
func parse(script string) ([]syntaxError, []antlr.Token) {
	collector := &errorCollector{DefaultErrorListener: antlr.NewDefaultErrorListener()}

	lexer := tsqlparser.NewTSqlLexer(antlr.NewInputStream(script))
	lexer.RemoveErrorListeners()
	lexer.AddErrorListener(collector)

	stream := antlr.NewCommonTokenStream(lexer, antlr.TokenDefaultChannel)
	parser := tsqlparser.NewTSqlParser(stream)
	parser.RemoveErrorListeners()
	parser.AddErrorListener(collector)
	parser.Interpreter.SetPredictionMode(antlr.PredictionModeLL)
	parser.BuildParseTrees = false

	parser.Tsql_file()

	stream.Fill()
	var tokens []antlr.Token
	for _, tok := range stream.GetAllTokens() {
		if tok.GetChannel() == antlr.TokenDefaultChannel && tok.GetTokenType() != antlr.TokenEOF {
			tokens = append(tokens, tok)
		}
	}
	return collector.errs, tokens
}

// portabilityErrors reports constructs that SQL Server accepts but Babelfish
// does not (see "Portable T-SQL" in the product brief).
func portabilityErrors(tokens []antlr.Token) []syntaxError {
	var errs []syntaxError
	add := func(tok antlr.Token, msg string) {
		errs = append(errs, syntaxError{Line: tok.GetLine(), Column: tok.GetColumn(), Msg: msg})
	}
	typ := func(i int) int {
		if i < 0 || i >= len(tokens) {
			return antlr.TokenEOF
		}
		return tokens[i].GetTokenType()
	}

	// CTE names: "WITH name AS (" and ", name AS (" inside a WITH list. A
	// table hint "WITH (UPDLOCK, ...)" has no name and is not one.
	ctes := map[string]bool{}
	for i := range tokens {
		if (typ(i) == tsqlparser.TSqlLexerWITH || typ(i) == tsqlparser.TSqlLexerCOMMA) &&
			typ(i+2) == tsqlparser.TSqlLexerAS && typ(i+3) == tsqlparser.TSqlLexerLR_BRACKET {
			ctes[strings.ToUpper(tokens[i+1].GetText())] = true
		}
	}
	for i, tok := range tokens {
		if typ(i) != tsqlparser.TSqlLexerUPDATE && typ(i) != tsqlparser.TSqlLexerDELETE {
			continue
		}
		target := i + 1
		if typ(i) == tsqlparser.TSqlLexerDELETE && typ(target) == tsqlparser.TSqlLexerFROM {
			target++
		}
		switch {
		case typ(target) == tsqlparser.TSqlLexerLR_BRACKET:
			add(tok, "UPDATE or DELETE through a derived table is not portable: change the base table (UPDATE m SET ... FROM hermod.Messages m WHERE m.ID IN (SELECT TOP (@n) ...))")
		case target < len(tokens) && ctes[strings.ToUpper(tokens[target].GetText())]:
			add(tok, "UPDATE or DELETE through a CTE is not portable: change the base table (UPDATE m SET ... FROM hermod.Messages m WHERE m.ID IN (SELECT TOP (@n) ...))")
		}
	}
	for i, tok := range tokens {
		text := strings.ToUpper(tok.GetText())
		switch {
		case tok.GetTokenType() == tsqlparser.TSqlLexerMERGE && !(i > 0 && strings.EqualFold(tokens[i-1].GetText(), "RANGE")):
			// MERGE RANGE (partition functions) is detected and guarded
			// separately; MERGE the statement is not portable.
			add(tok, "MERGE is not portable (Babelfish has none; SQL Server's has known bugs): UPDATE, then INSERT ... WHERE NOT EXISTS with a unique index as the guard")
		case tok.GetTokenType() == tsqlparser.TSqlLexerWAITFOR:
			add(tok, "WAITFOR is not portable: wait in the engine instead")
		case tok.GetTokenType() == tsqlparser.TSqlLexerSNAPSHOT:
			add(tok, "SNAPSHOT isolation is forbidden: the claim relies on locking reads (READCOMMITTEDLOCK)")
		case tok.GetTokenType() == tsqlparser.TSqlLexerCREATE && i+2 < len(tokens) &&
			tokens[i+1].GetTokenType() == tsqlparser.TSqlLexerOR && tokens[i+2].GetTokenType() == tsqlparser.TSqlLexerALTER:
			add(tok, "CREATE OR ALTER is not portable: IF OBJECT_ID(...) IS NULL EXEC(N'CREATE ... AS RETURN 0'), then GO, then ALTER")
		case text == "SP_SEQUENCE_GET_RANGE" || text == "ROWVERSION":
			add(tok, text+" is not portable (Babelfish has none)")
		}
	}
	return errs
}

// sqlFiles returns every .sql file under the checked folders, sorted.
func sqlFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, dir := range sqlDirs {
		n := 0
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && strings.HasSuffix(d.Name(), ".sql") {
				files = append(files, path)
				n++
			}
			return nil
		})
		require.NoError(t, err, "walk %s: the folder of T-SQL files to check must exist", dir)
		require.NotZero(t, n, "%s holds no .sql file: nothing would be checked", dir)
	}
	sort.Strings(files)
	return files
}

func describe(file string, errs []syntaxError) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "%s:%d:%d: %s\n", file, e.Line, e.Column+1, e.Msg)
	}
	return b.String()
}

func TestSQLServerFilesParse(t *testing.T) {
	t.Parallel()

	for _, file := range sqlFiles(t) {
		t.Run(filepath.ToSlash(file), func(t *testing.T) {
			t.Parallel()

			data, err := os.ReadFile(file)
			require.NoError(t, err)

			errs, tokens := parse(string(data))
			if len(errs) > 0 {
				t.Fatalf("T-SQL syntax errors:\n%s", describe(file, errs))
			}
			require.NotEmpty(t, tokens, "%s holds no statement", file)

			if portErrs := portabilityErrors(tokens); len(portErrs) > 0 {
				t.Fatalf("non-portable T-SQL:\n%s", describe(file, portErrs))
			}
		})
	}
}

// TestDocExamplesParse checks the SQL Server examples of the documentation
// (README.md and docs/: the fenced blocks "sql sqlserver NAME", found by
// internal/docblocks, the same extraction store/sqlserver's TestDocExamples
// runs them with) like the files above, also those that Babelfish cannot run.
func TestDocExamplesParse(t *testing.T) {
	t.Parallel()

	all, err := docblocks.Load("../..")
	require.NoError(t, err)
	blocks := docblocks.Select(all, docblocks.SQLServer)
	require.NotEmpty(t, blocks, "no sqlserver example found in the documentation")
	for _, b := range blocks {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()

			errs, tokens := parse(b.SQL)
			// Errors are reported at the documentation's lines.
			for i := range errs {
				errs[i].Line += b.Line - 1
			}
			if len(errs) > 0 {
				t.Fatalf("T-SQL syntax errors in %s:\n%s", b, describe(b.File, errs))
			}
			require.NotEmpty(t, tokens, "%s holds no statement", b)
			if portErrs := portabilityErrors(tokens); len(portErrs) > 0 {
				for i := range portErrs {
					portErrs[i].Line += b.Line - 1
				}
				t.Fatalf("non-portable T-SQL in %s:\n%s", b, describe(b.File, portErrs))
			}
		})
	}
}

func TestParseCatchesBrokenStatements(t *testing.T) {
	t.Parallel()

	cases := []struct {
		name   string
		script string
		line   int
	}{
		{
			name:   "missing SET list",
			script: "SELECT 1;\nUPDATE hermod.Messages\nWHERE ID = 1;\n",
			line:   3,
		},
		{
			name:   "misspelt keyword in the second batch",
			script: "SELECT 1;\nGO\nSELEC ID FROM hermod.Messages;\n",
			line:   3,
		},
		{
			name:   "unbalanced parenthesis",
			script: "SELECT TOP (10 ID FROM hermod.Messages;\n",
			line:   1,
		},
		{
			name:   "unterminated string",
			script: "SELECT 1;\nSELECT N'abc FROM hermod.Messages;\n",
			line:   2,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()

			errs, _ := parse(tc.script)
			require.NotEmpty(t, errs, "a broken statement was accepted:\n%s", tc.script)
			require.Equal(t, tc.line, errs[0].Line, "first error at the wrong line: %s", describe("script", errs))
		})
	}
}

func TestParseAcceptsPortableForms(t *testing.T) {
	t.Parallel()

	// The shapes the brief prescribes must parse, or the check above would
	// push authors away from them.
	script := `IF OBJECT_ID(N'hermod.X', N'P') IS NULL EXEC(N'CREATE PROCEDURE hermod.X AS RETURN 0');
GO
ALTER PROCEDURE hermod.X @n INT AS
BEGIN
    SET NOCOUNT ON;
    DECLARE @claimed TABLE (ID BIGINT NOT NULL PRIMARY KEY);
    UPDATE m SET Status = N'SENDING', Attempts = m.Attempts + 1
    OUTPUT inserted.ID INTO @claimed (ID)
    FROM hermod.Messages m
    WHERE m.ID IN (SELECT TOP (@n) ID FROM hermod.Messages WITH (UPDLOCK, READPAST, ROWLOCK, READCOMMITTEDLOCK)
                   WHERE Status = N'QUEUED' ORDER BY Priority DESC, ID);
END
GO 2
`
	errs, tokens := parse(script)
	require.Empty(t, errs, describe("script", errs))
	require.Empty(t, portabilityErrors(tokens))
}

func TestPortabilityRules(t *testing.T) {
	t.Parallel()

	cases := map[string]string{
		"merge":             "MERGE hermod.Options AS t USING (SELECT N'a' AS Name) AS s ON t.Name = s.Name WHEN MATCHED THEN UPDATE SET Value = N'b';",
		"create or alter":   "CREATE OR ALTER PROCEDURE hermod.X AS RETURN 0;",
		"waitfor":           "WAITFOR DELAY '00:00:01';",
		"snapshot":          "SET TRANSACTION ISOLATION LEVEL SNAPSHOT;",
		"sequence range":    "EXEC sp_sequence_get_range @sequence_name = N'hermod.S', @range_size = 10, @range_first_value = 1;",
		"rowversion column": "CREATE TABLE hermod.T (ID INT NOT NULL, RV ROWVERSION);",
		"update through a CTE": "WITH next AS (SELECT TOP (10) * FROM hermod.Messages WITH (UPDLOCK, READPAST) WHERE Status = N'QUEUED' ORDER BY ID)\n" +
			"UPDATE next SET Status = N'SENDING';",
		"delete through a CTE": "WITH a AS (SELECT 1 AS X), old AS (SELECT TOP (10) * FROM hermod.PendingReports ORDER BY ID)\nDELETE FROM old;",
	}
	for name, script := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()

			errs, tokens := parse(script)
			require.Empty(t, errs, "the example itself must be valid T-SQL: %s", describe(name, errs))
			require.NotEmpty(t, portabilityErrors(tokens), "not flagged: %s", script)
		})
	}
}
