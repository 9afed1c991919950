// Package docblocks finds the SQL examples in Hermod's documentation, so
// that tests can run them as written and grammar-check them.
//
// The convention: an SQL example is a fenced code block whose info string
// is "sql", the backend and the example's name:
//
//	```sql sqlserver shop-trigger     T-SQL for SQL Server, Azure SQL, Babelfish
//	```sql postgres shop-trigger      PostgreSQL
//	```sql sqlite shop-trigger        SQLite
//
// GitHub highlights by the first word ("sql") and ignores the rest. The name
// ([a-z0-9-]+) is unique per backend; the same example on several backends
// shares it. A block whose language is "sql" without a known backend and a
// name, or whose language is a dialect's own name (tsql, postgresql,
// sqlite3, ...), is an error: every SQL example must say where it runs, so
// that no test silently misses it.
//
// The documentation is README.md and every .md file under docs/.
//
// This package is used by tests only (store/sqlserver, store/postgres,
// store/sqlite run the examples, sql/tsqlcheck parses the T-SQL ones); it
// never enters the hermod binary.
package docblocks

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// The backends an example can name.
const (
	SQLServer = "sqlserver"
	Postgres  = "postgres"
	SQLite    = "sqlite"
)

// Block is one SQL example.
type Block struct {
	File    string // slash-separated path relative to the repository root
	Line    int    // 1-based line of the first line of SQL (after the fence)
	Backend string // SQLServer, Postgres or SQLite
	Name    string // the example's name, unique per backend
	SQL     string // the block's text, as a user would copy it
}

func (b Block) String() string {
	return fmt.Sprintf("%s:%d (%s %s)", b.File, b.Line, b.Backend, b.Name)
}

var (
	// fence opens or closes a fenced code block (CommonMark: up to three
	// spaces of indentation, three or more backticks or tildes).
	fence = regexp.MustCompile("^( {0,3})(`{3,}|~{3,})(.*)$")
	name  = regexp.MustCompile(`^[a-z0-9]+(?:-[a-z0-9]+)*$`)
	// dialects are languages that are SQL but do not follow the convention.
	dialects = map[string]bool{
		"tsql": true, "t-sql": true, "mssql": true, "sqlserver": true,
		"postgres": true, "postgresql": true, "pgsql": true, "plpgsql": true, "psql": true,
		"sqlite": true, "sqlite3": true, "plsql": true, "mysql": true,
	}
	backends = map[string]bool{SQLServer: true, Postgres: true, SQLite: true}
)

// Files returns the documentation files under root (the repository root):
// README.md and docs/**/*.md, sorted.
func Files(root string) ([]string, error) {
	files := []string{filepath.Join(root, "README.md")}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".md") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(files[1:])
	return files, nil
}

// Load returns every SQL example of the documentation under root, in
// document order (README.md first, then docs/ by path). It fails on a block
// that breaks the convention, on a fence left open and on a name used twice
// for one backend.
func Load(root string) ([]Block, error) {
	files, err := Files(root)
	if err != nil {
		return nil, err
	}
	var all []Block
	seen := map[string]Block{}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		rel, err := filepath.Rel(root, file)
		if err != nil {
			return nil, err
		}
		blocks, err := Parse(filepath.ToSlash(rel), string(data))
		if err != nil {
			return nil, err
		}
		for _, b := range blocks {
			key := b.Backend + " " + b.Name
			if prev, dup := seen[key]; dup {
				return nil, fmt.Errorf("%s: the example name %q is already used for %s at %s: names are unique per backend", b, b.Name, b.Backend, prev)
			}
			seen[key] = b
			all = append(all, b)
		}
	}
	return all, nil
}

// Parse returns the SQL examples of one Markdown text; file names it in
// blocks and errors.
func Parse(file, text string) ([]Block, error) {
	var (
		out     []Block
		open    bool
		marker  string // the opening fence's backticks or tildes
		indent  int
		info    string
		start   int // line of the opening fence
		content []string
	)
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	for i, line := range lines {
		lineNo := i + 1
		m := fence.FindStringSubmatch(line)
		if !open {
			if m == nil {
				continue
			}
			if m[2][0] == '`' && strings.Contains(m[3], "`") {
				continue // a code span, not a fence (CommonMark)
			}
			open, marker, indent, info, start, content = true, m[2], len(m[1]), strings.TrimSpace(m[3]), lineNo, nil
			continue
		}
		if m != nil && m[2][0] == marker[0] && len(m[2]) >= len(marker) && strings.TrimSpace(m[3]) == "" {
			open = false
			b, ok, err := block(file, start, info, content)
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, b)
			}
			continue
		}
		// CommonMark removes up to the opening fence's indentation.
		for n := 0; n < indent && strings.HasPrefix(line, " "); n++ {
			line = line[1:]
		}
		content = append(content, line)
	}
	if open {
		return nil, fmt.Errorf("%s:%d: the code block opened here is never closed", file, start)
	}
	return out, nil
}

// block makes a Block of a closed fenced block, or reports ok == false for
// a block that is not SQL.
func block(file string, fenceLine int, info string, content []string) (Block, bool, error) {
	fields := strings.Fields(info)
	if len(fields) == 0 {
		return Block{}, false, nil
	}
	lang := strings.ToLower(fields[0])
	usage := "an SQL example's info string is \"sql BACKEND NAME\" with BACKEND sqlserver, postgres or sqlite and NAME of [a-z0-9-] (see internal/docblocks)"
	if dialects[lang] {
		return Block{}, false, fmt.Errorf("%s:%d: code block %q: %s", file, fenceLine, info, usage)
	}
	if lang != "sql" {
		return Block{}, false, nil
	}
	if len(fields) != 3 || !backends[fields[1]] || !name.MatchString(fields[2]) {
		return Block{}, false, fmt.Errorf("%s:%d: code block %q: %s", file, fenceLine, info, usage)
	}
	sql := strings.Join(content, "\n")
	if strings.TrimSpace(sql) == "" {
		return Block{}, false, fmt.Errorf("%s:%d: SQL example %q is empty", file, fenceLine, info)
	}
	return Block{File: file, Line: fenceLine + 1, Backend: fields[1], Name: fields[2], SQL: sql + "\n"}, true, nil
}

// Select returns the blocks of one backend, in order.
func Select(blocks []Block, backend string) []Block {
	var out []Block
	for _, b := range blocks {
		if b.Backend == backend {
			out = append(out, b)
		}
	}
	return out
}
