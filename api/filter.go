package api

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/hermod-sms/hermod/store"
)

// This file holds the parser and evaluator of the Filter of Auron's
// messagedb/load: a WHERE condition written in SQL. Only a safe subset is
// accepted — comparisons of a Messages column with a literal, LIKE, IN,
// BETWEEN, IS [NOT] NULL, AND, OR, NOT and parentheses — and it is never
// put into a statement: the parts that MessageFilter can express narrow
// the query, and the whole condition is evaluated in Go on each row.
//
// Semantics: "=" and the other comparisons are exact for strings (as on
// PostgreSQL and SQLite); LIKE ignores case (as on SQL Server's default
// collation and SQLite); NULL follows SQL's three-valued logic, with the
// store's convention that an optional column's zero value is NULL.

// colKind is the type of a Messages column.
type colKind int

const (
	kindString colKind = iota
	kindInt
	kindTime
	kindBool
)

// column is one filterable Messages column.
type column struct {
	name     string
	kind     colKind
	nullable bool
	get      func(m *store.Message) any // string, int64, time.Time or bool
}

var filterColumns = func() map[string]column {
	cols := []column{
		{"ID", kindInt, false, func(m *store.Message) any { return m.ID }},
		{"Direction", kindString, false, func(m *store.Message) any { return m.Direction }},
		{"Status", kindString, false, func(m *store.Message) any { return m.Status }},
		{"TriggerStatus", kindString, false, func(m *store.Message) any { return m.TriggerStatus }},
		{"ChannelID", kindInt, true, func(m *store.Message) any { return m.ChannelID }},
		{"ToAddress", kindString, false, func(m *store.Message) any { return m.ToAddress }},
		{"FromAddress", kindString, true, func(m *store.Message) any { return m.FromAddress }},
		{"FromTON", kindInt, true, func(m *store.Message) any { return int64(m.FromTON) }},
		{"FromNPI", kindInt, true, func(m *store.Message) any { return int64(m.FromNPI) }},
		{"Body", kindString, false, func(m *store.Message) any { return m.Body }},
		{"DataCoding", kindInt, true, func(m *store.Message) any { return int64(m.DataCoding) }},
		{"Priority", kindInt, false, func(m *store.Message) any { return int64(m.Priority) }},
		{"RequestDeliveryReport", kindBool, false, func(m *store.Message) any { return m.RequestDeliveryReport }},
		{"ScheduledTime", kindTime, true, func(m *store.Message) any { return m.ScheduledTime }},
		{"ValidUntil", kindTime, true, func(m *store.Message) any { return m.ValidUntil }},
		{"Reference", kindString, true, func(m *store.Message) any { return m.Reference }},
		{"TotalParts", kindInt, false, func(m *store.Message) any { return int64(m.TotalParts) }},
		{"Attempts", kindInt, false, func(m *store.Message) any { return int64(m.Attempts) }},
		{"NextAttemptTime", kindTime, true, func(m *store.Message) any { return m.NextAttemptTime }},
		{"CreatedTime", kindTime, false, func(m *store.Message) any { return m.CreatedTime }},
		{"SentTime", kindTime, true, func(m *store.Message) any { return m.SentTime }},
		{"DeliveredTime", kindTime, true, func(m *store.Message) any { return m.DeliveredTime }},
		{"ReceivedTime", kindTime, true, func(m *store.Message) any { return m.ReceivedTime }},
		{"LastUpdate", kindTime, false, func(m *store.Message) any { return m.LastUpdate }},
		{"ErrorCode", kindString, true, func(m *store.Message) any { return m.ErrorCode }},
		{"StatusDetails", kindString, true, func(m *store.Message) any { return m.StatusDetails }},
		{"BatchID", kindString, true, func(m *store.Message) any { return m.BatchID }},
		{"CampaignID", kindString, true, func(m *store.Message) any { return m.CampaignID }},
		{"ClientReference", kindString, true, func(m *store.Message) any { return m.ClientReference }},
		{"CustomField1", kindString, true, func(m *store.Message) any { return m.CustomField1 }},
		{"CustomField2", kindString, true, func(m *store.Message) any { return m.CustomField2 }},
	}
	out := make(map[string]column, len(cols))
	for _, c := range cols {
		out[strings.ToLower(c.name)] = c
	}
	// Auron's names for the same columns.
	out["statusid"] = out["status"]
	return out
}()

// isNull reports whether v is the zero value that stands for NULL.
func (c column) isNull(v any) bool {
	if !c.nullable {
		return false
	}
	switch x := v.(type) {
	case string:
		return x == ""
	case int64:
		if c.name == "ChannelID" {
			return x == 0
		}
		return x < 0
	case time.Time:
		return x.IsZero()
	}
	return false
}

// Filter AST.
type (
	filterNode interface {
		eval(m *store.Message) tri
	}
	andNode struct{ l, r filterNode }
	orNode  struct{ l, r filterNode }
	notNode struct{ x filterNode }
	cmpNode struct {
		col column
		op  string // = <> < <= > >=
		lit any
	}
	likeNode struct {
		col     column
		pattern string
		not     bool
	}
	inNode struct {
		col  column
		lits []any
		not  bool
	}
	nullNode struct {
		col column
		not bool
	}
)

// tri is SQL's three-valued logic.
type tri int8

const (
	triFalse tri = iota
	triTrue
	triUnknown
)

func triOf(b bool) tri {
	if b {
		return triTrue
	}
	return triFalse
}

func (n andNode) eval(m *store.Message) tri {
	l := n.l.eval(m)
	if l == triFalse {
		return triFalse
	}
	r := n.r.eval(m)
	switch {
	case r == triFalse:
		return triFalse
	case l == triTrue && r == triTrue:
		return triTrue
	}
	return triUnknown
}

func (n orNode) eval(m *store.Message) tri {
	l := n.l.eval(m)
	if l == triTrue {
		return triTrue
	}
	r := n.r.eval(m)
	switch {
	case r == triTrue:
		return triTrue
	case l == triFalse && r == triFalse:
		return triFalse
	}
	return triUnknown
}

func (n notNode) eval(m *store.Message) tri {
	switch n.x.eval(m) {
	case triTrue:
		return triFalse
	case triFalse:
		return triTrue
	}
	return triUnknown
}

func (n cmpNode) eval(m *store.Message) tri {
	v := n.col.get(m)
	if n.col.isNull(v) {
		return triUnknown
	}
	c := compare(v, n.lit)
	switch n.op {
	case "=":
		return triOf(c == 0)
	case "<>":
		return triOf(c != 0)
	case "<":
		return triOf(c < 0)
	case "<=":
		return triOf(c <= 0)
	case ">":
		return triOf(c > 0)
	case ">=":
		return triOf(c >= 0)
	}
	return triUnknown
}

func (n likeNode) eval(m *store.Message) tri {
	v := n.col.get(m)
	if n.col.isNull(v) {
		return triUnknown
	}
	s, _ := v.(string)
	return triOf(likeMatch(strings.ToLower(s), strings.ToLower(n.pattern)) != n.not)
}

func (n inNode) eval(m *store.Message) tri {
	v := n.col.get(m)
	if n.col.isNull(v) {
		return triUnknown
	}
	for _, l := range n.lits {
		if compare(v, l) == 0 {
			return triOf(!n.not)
		}
	}
	return triOf(n.not)
}

func (n nullNode) eval(m *store.Message) tri {
	return triOf(n.col.isNull(n.col.get(m)) != n.not)
}

// compare orders a column value and a literal already converted to the
// column's type.
func compare(v, lit any) int {
	switch a := v.(type) {
	case string:
		return strings.Compare(a, lit.(string))
	case int64:
		b := lit.(int64)
		switch {
		case a < b:
			return -1
		case a > b:
			return 1
		}
		return 0
	case time.Time:
		return a.Compare(lit.(time.Time))
	case bool:
		b := lit.(bool)
		switch {
		case a == b:
			return 0
		case !a:
			return -1
		}
		return 1
	}
	return 0
}

// likeMatch matches s against a LIKE pattern with % and _.
func likeMatch(s, p string) bool {
	sr, pr := []rune(s), []rune(p)
	// Iterative matching with backtracking on the last %.
	si, pi, star, mark := 0, 0, -1, 0
	for si < len(sr) {
		switch {
		case pi < len(pr) && (pr[pi] == '_' || pr[pi] == sr[si]):
			si++
			pi++
		case pi < len(pr) && pr[pi] == '%':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(pr) && pr[pi] == '%' {
		pi++
	}
	return pi == len(pr)
}

// Tokens.
type tokKind int

const (
	tokEOF tokKind = iota
	tokIdent
	tokString
	tokNumber
	tokOp     // = <> != < <= > >=
	tokLParen // (
	tokRParen // )
	tokComma
)

type token struct {
	kind tokKind
	text string
	pos  int // 1-based character position, for error messages
}

// FilterError says where a Filter is wrong and what is accepted.
type FilterError struct {
	Pos int // 1-based character position; 0: the end
	Msg string
}

func (e *FilterError) Error() string {
	if e.Pos == 0 {
		return "Filter, at the end: " + e.Msg
	}
	return fmt.Sprintf("Filter, at character %d: %s", e.Pos, e.Msg)
}

const maxFilterLength = 4000

func lexFilter(src string) ([]token, error) {
	var toks []token
	rs := []rune(src)
	for i := 0; i < len(rs); {
		c := rs[i]
		start := i + 1
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '(':
			toks = append(toks, token{tokLParen, "(", start})
			i++
		case c == ')':
			toks = append(toks, token{tokRParen, ")", start})
			i++
		case c == ',':
			toks = append(toks, token{tokComma, ",", start})
			i++
		case c == '=':
			toks = append(toks, token{tokOp, "=", start})
			i++
		case c == '<' || c == '>' || c == '!':
			two := ""
			if i+1 < len(rs) {
				two = string(rs[i : i+2])
			}
			switch two {
			case "<=", ">=", "<>":
				toks = append(toks, token{tokOp, two, start})
				i += 2
			case "!=":
				toks = append(toks, token{tokOp, "<>", start})
				i += 2
			default:
				if c == '!' {
					return nil, &FilterError{start, "'!' is accepted only in '!='"}
				}
				toks = append(toks, token{tokOp, string(c), start})
				i++
			}
		case c == '\'' || ((c == 'N' || c == 'n') && i+1 < len(rs) && rs[i+1] == '\''):
			if c != '\'' {
				i++
			}
			i++
			var b strings.Builder
			closed := false
			for i < len(rs) {
				if rs[i] == '\'' {
					if i+1 < len(rs) && rs[i+1] == '\'' {
						b.WriteRune('\'')
						i += 2
						continue
					}
					i++
					closed = true
					break
				}
				b.WriteRune(rs[i])
				i++
			}
			if !closed {
				return nil, &FilterError{start, "the string is not closed: end it with ' (write '' for a quote inside it)"}
			}
			toks = append(toks, token{tokString, b.String(), start})
		case c >= '0' && c <= '9' || (c == '-' && i+1 < len(rs) && rs[i+1] >= '0' && rs[i+1] <= '9'):
			j := i + 1
			for j < len(rs) && rs[j] >= '0' && rs[j] <= '9' {
				j++
			}
			toks = append(toks, token{tokNumber, string(rs[i:j]), start})
			i = j
		case c == '_' || unicode.IsLetter(c) || c == '[' || c == '"':
			// Identifiers, optionally quoted as [Name] or "Name".
			if c == '[' || c == '"' {
				end := ']'
				if c == '"' {
					end = '"'
				}
				j := i + 1
				for j < len(rs) && rs[j] != end {
					j++
				}
				if j == len(rs) {
					return nil, &FilterError{start, "the quoted name is not closed"}
				}
				toks = append(toks, token{tokIdent, string(rs[i+1 : j]), start})
				i = j + 1
				continue
			}
			j := i + 1
			for j < len(rs) && (rs[j] == '_' || unicode.IsLetter(rs[j]) || unicode.IsDigit(rs[j]) || rs[j] == '.') {
				j++
			}
			toks = append(toks, token{tokIdent, string(rs[i:j]), start})
			i = j
		default:
			return nil, &FilterError{start, fmt.Sprintf("%q is not accepted: a Filter holds column comparisons, LIKE, IN, BETWEEN, IS [NOT] NULL, AND, OR, NOT, parentheses and 'string' or number literals", string(c))}
		}
	}
	return append(toks, token{kind: tokEOF}), nil
}

// filterParser is a recursive-descent parser over the tokens.
type filterParser struct {
	toks  []token
	i     int
	depth int
}

// parseFilter parses an Auron Filter. An empty filter matches every row.
func parseFilter(src string) (filterNode, error) {
	if len(src) > maxFilterLength {
		return nil, &FilterError{0, fmt.Sprintf("the Filter is %d bytes long; the limit is %d", len(src), maxFilterLength)}
	}
	toks, err := lexFilter(src)
	if err != nil {
		return nil, err
	}
	p := &filterParser{toks: toks}
	if p.peek().kind == tokEOF {
		return nil, nil
	}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, &FilterError{t.pos, fmt.Sprintf("unexpected %q: join conditions with AND or OR", t.text)}
	}
	return n, nil
}

func (p *filterParser) peek() token { return p.toks[p.i] }
func (p *filterParser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *filterParser) keyword(kw string) bool {
	t := p.peek()
	if t.kind == tokIdent && strings.EqualFold(t.text, kw) {
		p.i++
		return true
	}
	return false
}

func (p *filterParser) or() (filterNode, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.keyword("OR") {
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = orNode{l, r}
	}
	return l, nil
}

func (p *filterParser) and() (filterNode, error) {
	l, err := p.not()
	if err != nil {
		return nil, err
	}
	for p.keyword("AND") {
		r, err := p.not()
		if err != nil {
			return nil, err
		}
		l = andNode{l, r}
	}
	return l, nil
}

func (p *filterParser) not() (filterNode, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > 100 {
		return nil, &FilterError{p.peek().pos, "the Filter nests too deeply: simplify it"}
	}
	if p.keyword("NOT") {
		x, err := p.not()
		if err != nil {
			return nil, err
		}
		return notNode{x}, nil
	}
	if p.peek().kind == tokLParen {
		p.next()
		x, err := p.or()
		if err != nil {
			return nil, err
		}
		if t := p.next(); t.kind != tokRParen {
			return nil, &FilterError{t.pos, "expected ')' to close the parenthesis"}
		}
		return x, nil
	}
	return p.predicate()
}

func (p *filterParser) predicate() (filterNode, error) {
	t := p.next()
	if t.kind != tokIdent {
		return nil, &FilterError{t.pos, fmt.Sprintf("expected a column name, got %q", t.text)}
	}
	name := t.text
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		name = name[i+1:] // hermod.Messages.Status, m.Status
	}
	col, ok := filterColumns[strings.ToLower(name)]
	if !ok {
		return nil, &FilterError{t.pos, fmt.Sprintf("%q is not a Messages column that can be filtered on (functions and subqueries are not accepted)", t.text)}
	}
	not := p.keyword("NOT")
	switch {
	case p.keyword("LIKE"):
		lt := p.next()
		if lt.kind != tokString {
			return nil, &FilterError{lt.pos, "LIKE takes a 'string' pattern"}
		}
		if col.kind != kindString {
			return nil, &FilterError{lt.pos, col.name + " is not a text column: use =, <, > or IN"}
		}
		return likeNode{col, lt.text, not}, nil
	case p.keyword("IN"):
		if lp := p.next(); lp.kind != tokLParen {
			return nil, &FilterError{lp.pos, "IN takes a list in parentheses: IN ('A', 'B')"}
		}
		var lits []any
		for {
			lt := p.next()
			v, err := literal(col, lt)
			if err != nil {
				return nil, err
			}
			lits = append(lits, v)
			if len(lits) > 1000 {
				return nil, &FilterError{lt.pos, "IN lists at most 1000 values"}
			}
			sep := p.next()
			if sep.kind == tokRParen {
				break
			}
			if sep.kind != tokComma {
				return nil, &FilterError{sep.pos, "expected ',' or ')' in the IN list"}
			}
		}
		return inNode{col, lits, not}, nil
	case p.keyword("BETWEEN"):
		lo, err := literal(col, p.next())
		if err != nil {
			return nil, err
		}
		if !p.keyword("AND") {
			return nil, &FilterError{p.peek().pos, "BETWEEN takes two values joined by AND"}
		}
		hi, err := literal(col, p.next())
		if err != nil {
			return nil, err
		}
		var n filterNode = andNode{cmpNode{col, ">=", lo}, cmpNode{col, "<=", hi}}
		if not {
			n = notNode{n}
		}
		return n, nil
	case not:
		return nil, &FilterError{p.peek().pos, "NOT after a column must be followed by LIKE, IN or BETWEEN"}
	case p.keyword("IS"):
		isNot := p.keyword("NOT")
		if !p.keyword("NULL") {
			return nil, &FilterError{p.peek().pos, "IS must be followed by NULL or NOT NULL"}
		}
		return nullNode{col, isNot}, nil
	}
	op := p.next()
	if op.kind != tokOp {
		return nil, &FilterError{op.pos, fmt.Sprintf("expected a comparison (=, <>, <, <=, >, >=, LIKE, IN, BETWEEN, IS NULL) after %s", col.name)}
	}
	lt := p.next()
	if lt.kind == tokIdent && strings.EqualFold(lt.text, "NULL") {
		return nil, &FilterError{lt.pos, "a comparison with NULL is never true: write IS NULL or IS NOT NULL"}
	}
	v, err := literal(col, lt)
	if err != nil {
		return nil, err
	}
	return cmpNode{col, op.text, v}, nil
}

var filterTimeLayouts = []string{
	time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04", "2006-01-02", "20060102",
}

// literal converts a literal token to the column's type.
func literal(col column, t token) (any, error) {
	switch t.kind {
	case tokString, tokNumber:
	default:
		return nil, &FilterError{t.pos, fmt.Sprintf("expected a 'string' or number to compare %s with, got %q", col.name, t.text)}
	}
	switch col.kind {
	case kindString:
		return t.text, nil
	case kindInt:
		n, err := strconv.ParseInt(t.text, 10, 64)
		if err != nil {
			return nil, &FilterError{t.pos, fmt.Sprintf("%s is a number column: %q is not an integer", col.name, t.text)}
		}
		return n, nil
	case kindBool:
		switch t.text {
		case "0", "false":
			return false, nil
		case "1", "true":
			return true, nil
		}
		return nil, &FilterError{t.pos, col.name + " is 0 or 1"}
	case kindTime:
		if t.kind == tokString {
			for _, layout := range filterTimeLayouts {
				if v, err := time.Parse(layout, t.text); err == nil {
					return v.UTC(), nil
				}
			}
		}
		return nil, &FilterError{t.pos, fmt.Sprintf("%s is a time (UTC): write it as 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS'", col.name)}
	}
	return nil, &FilterError{t.pos, "unsupported literal"}
}

// pushDown fills f with what the conditions joined by AND at the top of n
// say in MessageFilter's terms. The result selects a superset of the rows
// n matches; n is still evaluated on each row.
func pushDown(n filterNode, f *store.MessageFilter) {
	switch x := n.(type) {
	case andNode:
		pushDown(x.l, f)
		pushDown(x.r, f)
	case cmpNode:
		switch x.col.name {
		case "Status":
			if x.op == "=" && f.Status == nil {
				f.Status = []string{x.lit.(string)}
			}
		case "Direction":
			if x.op == "=" {
				f.Direction = x.lit.(string)
			}
		case "ChannelID":
			if x.op == "=" && x.lit.(int64) != 0 {
				f.ChannelID = x.lit.(int64)
			}
		case "BatchID":
			if x.op == "=" {
				f.BatchID = x.lit.(string)
			}
		case "CampaignID":
			if x.op == "=" {
				f.CampaignID = x.lit.(string)
			}
		case "ToAddress", "FromAddress":
			if x.op == "=" {
				f.Address = x.lit.(string)
			}
		case "CreatedTime":
			t := x.lit.(time.Time)
			switch x.op {
			case ">=", ">", "=":
				if t.After(f.Since) {
					f.Since = t
				}
			}
			switch x.op {
			case "<":
				f.Until = t
			case "<=", "=":
				f.Until = t.Add(time.Millisecond)
			}
		}
	case inNode:
		if x.col.name == "Status" && !x.not && f.Status == nil {
			for _, l := range x.lits {
				f.Status = append(f.Status, l.(string))
			}
		}
	}
}

// matches evaluates a parsed filter (nil matches everything).
func matches(n filterNode, m *store.Message) bool {
	return n == nil || n.eval(m) == triTrue
}
