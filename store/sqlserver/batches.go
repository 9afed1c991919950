package sqlserver

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// batch is one batch of a T-SQL script, as sqlcmd and SSMS send it.
type batch struct {
	SQL   string // the text, from the start of its first line
	Line  int    // 1-based line of the script where SQL starts
	Count int    // how many times to run it: "GO 3" runs it three times
}

var (
	// goCandidate matches a line whose first word is GO: a separator or a
	// mistake, never a statement (GOTO is one word).
	goCandidate = regexp.MustCompile(`(?i)^[ \t]*GO(?:[ \t]|--|$)`)
	// goLine is a valid separator: GO, an optional repeat count, an
	// optional -- comment.
	goLine = regexp.MustCompile(`(?i)^[ \t]*GO(?:[ \t]+([0-9]+))?[ \t]*(?:--.*)?$`)
)

// splitBatches splits a T-SQL script into the batches between GO lines, the
// way sqlcmd does: GO is a client-side separator, never sent to the server.
//
// A separator is a line holding GO alone (any case, surrounded by spaces or
// tabs), optionally followed by a repeat count (GO 5) and a -- comment. GO
// inside a string ('...', N'...'), a quoted identifier ("..." or [...]), a
// block comment (/* ... */, which nests in T-SQL) or after other text on
// its line is not a separator. Lines may end in LF or CRLF. Batches that
// hold only whitespace and comments are dropped. A line starting with GO
// followed by anything else, a zero count, or a string or comment left
// open at the end of the script is an error naming the line.
func splitBatches(script string) ([]batch, error) {
	var (
		out        []batch
		sc         scanner
		start      = 0 // byte offset where the current batch starts
		startLine  = 1
		lineNo     = 0
		hasContent = false
	)
	for offset := 0; offset < len(script); {
		lineNo++
		end := strings.IndexByte(script[offset:], '\n')
		next := len(script)
		if end >= 0 {
			next = offset + end + 1
			end = offset + end
		} else {
			end = len(script)
		}
		line := strings.TrimSuffix(script[offset:end], "\r")

		if sc.idle() && goCandidate.MatchString(line) {
			m := goLine.FindStringSubmatch(line)
			if m == nil {
				return nil, fmt.Errorf("line %d: %q: GO must stand alone on its line, optionally followed by a repeat count and a -- comment", lineNo, strings.TrimSpace(line))
			}
			count := 1
			if m[1] != "" {
				n, err := strconv.Atoi(m[1])
				if err != nil || n < 1 {
					return nil, fmt.Errorf("line %d: %q: the repeat count after GO must be a positive number", lineNo, strings.TrimSpace(line))
				}
				count = n
			}
			if hasContent {
				out = append(out, batch{SQL: script[start:offset], Line: startLine, Count: count})
			}
			start, startLine, hasContent = next, lineNo+1, false
			offset = next
			continue
		}

		if sc.scanLine(line, lineNo) {
			hasContent = true
		}
		offset = next
	}
	if err := sc.unterminated(); err != nil {
		return nil, err
	}
	if hasContent {
		out = append(out, batch{SQL: script[start:], Line: startLine, Count: 1})
	}
	return out, nil
}

// scanner tracks the lexical state that spans lines: open strings, quoted
// identifiers and (nested) block comments.
type scanner struct {
	quote    byte // '\'', '"' or ']' while inside a string or quoted identifier
	depth    int  // nesting depth of /* */ comments
	openLine int  // where the open string or comment started
	openWhat string
}

// idle reports whether a new line starts outside strings and comments.
func (sc *scanner) idle() bool { return sc.quote == 0 && sc.depth == 0 }

// scanLine advances over one line and reports whether it held anything but
// whitespace and comments.
func (sc *scanner) scanLine(line string, lineNo int) (content bool) {
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case sc.depth > 0:
			if c == '/' && i+1 < len(line) && line[i+1] == '*' {
				sc.depth++
				i++
			} else if c == '*' && i+1 < len(line) && line[i+1] == '/' {
				sc.depth--
				i++
			}
		case sc.quote != 0:
			content = true
			if c == sc.quote {
				// A doubled closing quote is an escaped one.
				if i+1 < len(line) && line[i+1] == sc.quote {
					i++
				} else {
					sc.quote = 0
				}
			}
		case c == '-' && i+1 < len(line) && line[i+1] == '-':
			return content // the rest of the line is a comment
		case c == '/' && i+1 < len(line) && line[i+1] == '*':
			sc.depth, sc.openLine, sc.openWhat = 1, lineNo, "block comment"
			i++
		case c == '\'':
			sc.quote, sc.openLine, sc.openWhat, content = '\'', lineNo, "string", true
		case c == '"':
			sc.quote, sc.openLine, sc.openWhat, content = '"', lineNo, "quoted identifier", true
		case c == '[':
			sc.quote, sc.openLine, sc.openWhat, content = ']', lineNo, "bracketed identifier", true
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
		default:
			content = true
		}
	}
	return content
}

// unterminated reports a string or comment still open at the end.
func (sc *scanner) unterminated() error {
	if sc.idle() {
		return nil
	}
	return fmt.Errorf("line %d: %s is never closed: the script ends inside it", sc.openLine, sc.openWhat)
}
