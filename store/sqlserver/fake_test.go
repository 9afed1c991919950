package sqlserver

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// A fake database/sql driver: it answers each statement from a script and
// records what the store sent, so that the Go side of the store (chunking,
// result mapping, retries, error paths) is tested without a server.

// fakeSet is one result set.
type fakeSet struct {
	cols []string
	rows [][]driver.Value
}

// fakeAnswer is the answer to one statement.
type fakeAnswer struct {
	sets []fakeSet
	err  error
}

// fakeCall is one statement the store sent.
type fakeCall struct {
	query string
	args  []any
}

type fakeServer struct {
	mu     sync.Mutex
	answer func(n int, query string, args []any) fakeAnswer // n counts statements from 0
	calls  []fakeCall
	events []string // BEGIN, COMMIT, ROLLBACK and statement kinds, in order
}

func newFakeStore(t *testing.T, answer func(n int, query string, args []any) fakeAnswer) (*Store, *fakeServer) {
	t.Helper()
	srv := &fakeServer{answer: answer}
	db := sql.OpenDB(fakeConnector{srv})
	t.Cleanup(func() { db.Close() })
	return &Store{logger: slog.New(slog.DiscardHandler), db: db, redacted: "sqlserver://fake"}, srv
}

func (s *fakeServer) run(query string, named []driver.NamedValue) fakeAnswer {
	s.mu.Lock()
	defer s.mu.Unlock()
	args := make([]any, len(named))
	for i, nv := range named {
		args[i] = nv.Value
	}
	n := len(s.calls)
	s.calls = append(s.calls, fakeCall{query: query, args: args})
	s.events = append(s.events, "EXEC")
	return s.answer(n, query, args)
}

func (s *fakeServer) event(e string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
}

func (s *fakeServer) snapshot() ([]fakeCall, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]fakeCall(nil), s.calls...), append([]string(nil), s.events...)
}

type fakeConnector struct{ srv *fakeServer }

func (c fakeConnector) Connect(context.Context) (driver.Conn, error) {
	return &fakeConn{srv: c.srv}, nil
}
func (c fakeConnector) Driver() driver.Driver { return fakeDriver{} }

type fakeDriver struct{}

func (fakeDriver) Open(string) (driver.Conn, error) { return nil, errors.New("use the connector") }

type fakeConn struct{ srv *fakeServer }

var (
	_ driver.ConnBeginTx       = (*fakeConn)(nil)
	_ driver.QueryerContext    = (*fakeConn)(nil)
	_ driver.ExecerContext     = (*fakeConn)(nil)
	_ driver.NamedValueChecker = (*fakeConn)(nil)
	_ driver.RowsNextResultSet = (*fakeRows)(nil)
)

func (c *fakeConn) Prepare(string) (driver.Stmt, error) {
	return nil, errors.New("the store does not prepare")
}
func (c *fakeConn) Close() error { return nil }
func (c *fakeConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *fakeConn) BeginTx(_ context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if sql.IsolationLevel(opts.Isolation) != sql.LevelReadCommitted {
		return nil, errors.New("the store must ask for READ COMMITTED")
	}
	c.srv.event("BEGIN")
	return fakeTx{c.srv}, nil
}

// CheckNamedValue accepts every argument as is (civil.DateTime, int32, ...),
// as go-mssqldb does.
func (c *fakeConn) CheckNamedValue(*driver.NamedValue) error { return nil }

func (c *fakeConn) QueryContext(_ context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	a := c.srv.run(query, args)
	if a.err != nil {
		return nil, a.err
	}
	return &fakeRows{sets: a.sets}, nil
}

func (c *fakeConn) ExecContext(_ context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	a := c.srv.run(query, args)
	if a.err != nil {
		return nil, a.err
	}
	return driver.RowsAffected(0), nil
}

type fakeTx struct{ srv *fakeServer }

func (t fakeTx) Commit() error   { t.srv.event("COMMIT"); return nil }
func (t fakeTx) Rollback() error { t.srv.event("ROLLBACK"); return nil }

type fakeRows struct {
	sets []fakeSet
	set  int
	row  int
}

func (r *fakeRows) Columns() []string {
	if r.set >= len(r.sets) {
		return nil
	}
	return r.sets[r.set].cols
}

func (r *fakeRows) Close() error { return nil }

func (r *fakeRows) Next(dest []driver.Value) error {
	if r.set >= len(r.sets) || r.row >= len(r.sets[r.set].rows) {
		return io.EOF
	}
	copy(dest, r.sets[r.set].rows[r.row])
	r.row++
	return nil
}

func (r *fakeRows) HasNextResultSet() bool { return r.set+1 < len(r.sets) }

func (r *fakeRows) NextResultSet() error {
	if !r.HasNextResultSet() {
		return io.EOF
	}
	r.set++
	r.row = 0
	return nil
}

// oneValue is an answer of one result set with one row.
func oneValue(vals ...driver.Value) fakeAnswer {
	cols := make([]string, len(vals))
	for i := range cols {
		cols[i] = "c" + strings.Repeat("x", i)
	}
	return fakeAnswer{sets: []fakeSet{{cols: cols, rows: [][]driver.Value{vals}}}}
}

// ids is a result set of one BIGINT column.
func ids(vals ...int64) fakeSet {
	s := fakeSet{cols: []string{"ID"}}
	for _, v := range vals {
		s.rows = append(s.rows, []driver.Value{v})
	}
	return s
}

// ordIDs is the (Ord, ID) result set of matched ClientReferences.
func ordIDs(pairs ...int64) fakeSet {
	s := fakeSet{cols: []string{"Ord", "ID"}}
	for i := 0; i+1 < len(pairs); i += 2 {
		s.rows = append(s.rows, []driver.Value{pairs[i], pairs[i+1]})
	}
	return s
}
