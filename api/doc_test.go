package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/channels"
)

// docExample is one ```sh block of docs/api.md: a curl command and the
// status it must get.
type docExample struct {
	line   int
	cmd    string
	status int
}

// readDocExamples extracts the ```sh blocks of a Markdown file. Each block
// holds one curl command (lines may continue with a backslash) and a
// "# => STATUS" line.
func readDocExamples(t *testing.T, path string) []docExample {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var (
		out   []docExample
		cur   *docExample
		n     int
		parts []string
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```sh":
			cur = &docExample{line: n}
			parts = nil
		case cur != nil && strings.TrimSpace(line) == "```":
			cur.cmd = strings.Join(parts, " ")
			require.NotZero(t, cur.status, "docs/api.md:%d: the example has no '# => STATUS' line", cur.line)
			out = append(out, *cur)
			cur = nil
		case cur != nil && strings.HasPrefix(line, "# => "):
			cur.status, err = strconv.Atoi(strings.TrimPrefix(line, "# => "))
			require.NoError(t, err, "docs/api.md:%d", n)
		case cur != nil:
			parts = append(parts, strings.TrimSuffix(strings.TrimSpace(line), "\\"))
		}
	}
	require.NoError(t, sc.Err())
	return out
}

// shellWords splits a command line as a POSIX shell would for the forms
// the docs use: single quotes, double quotes with $VAR expansion, and
// backslash escapes.
func shellWords(s string, env map[string]string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool
	)
	expand := func(i int, rs []rune) int {
		j := i + 1
		for j < len(rs) && (rs[j] == '_' || rs[j] >= 'A' && rs[j] <= 'Z' || rs[j] >= 'a' && rs[j] <= 'z' || rs[j] >= '0' && rs[j] <= '9') {
			j++
		}
		cur.WriteString(env[string(rs[i+1:j])])
		return j
	}
	rs := []rune(s)
	for i := 0; i < len(rs); {
		c := rs[i]
		switch {
		case c == ' ' || c == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
			i++
		case c == '\'':
			in = true
			j := i + 1
			for j < len(rs) && rs[j] != '\'' {
				j++
			}
			if j == len(rs) {
				return nil, fmt.Errorf("unclosed single quote")
			}
			cur.WriteString(string(rs[i+1 : j]))
			i = j + 1
		case c == '"':
			in = true
			i++
			for i < len(rs) && rs[i] != '"' {
				switch {
				case rs[i] == '\\' && i+1 < len(rs):
					cur.WriteRune(rs[i+1])
					i += 2
				case rs[i] == '$':
					i = expand(i, rs)
				default:
					cur.WriteRune(rs[i])
					i++
				}
			}
			if i == len(rs) {
				return nil, fmt.Errorf("unclosed double quote")
			}
			i++
		case c == '\\' && i+1 < len(rs):
			in = true
			cur.WriteRune(rs[i+1])
			i += 2
		case c == '$':
			in = true
			i = expand(i, rs)
		default:
			in = true
			cur.WriteRune(c)
			i++
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

// curlRequest builds the request a curl command line would send. Only the
// options the docs use are known; any other is an error, so that the docs
// cannot use a form this test does not check.
func curlRequest(words []string) (*http.Request, error) {
	if len(words) == 0 || words[0] != "curl" {
		return nil, fmt.Errorf("not a curl command: %q", words)
	}
	var (
		method, rawURL string
		headers        [][2]string
		data           []string
		get            bool
		urlencoded     []string
	)
	for i := 1; i < len(words); i++ {
		w := words[i]
		arg := func() (string, error) {
			if i+1 >= len(words) {
				return "", fmt.Errorf("%s needs a value", w)
			}
			i++
			return words[i], nil
		}
		var err error
		var v string
		switch w {
		case "-s", "--silent", "-i", "-N":
		case "-X", "--request":
			method, err = arg()
		case "-H", "--header":
			if v, err = arg(); err == nil {
				k, val, ok := strings.Cut(v, ":")
				if !ok {
					return nil, fmt.Errorf("header %q has no colon", v)
				}
				headers = append(headers, [2]string{strings.TrimSpace(k), strings.TrimSpace(val)})
			}
		case "-d", "--data", "--data-raw":
			if v, err = arg(); err == nil {
				data = append(data, v)
			}
		case "--data-urlencode":
			if v, err = arg(); err == nil {
				k, val, _ := strings.Cut(v, "=")
				urlencoded = append(urlencoded, url.QueryEscape(k)+"="+url.QueryEscape(val))
			}
		case "-G", "--get":
			get = true
		default:
			if strings.HasPrefix(w, "-") {
				return nil, fmt.Errorf("curl option %s is not supported by the doc test", w)
			}
			if rawURL != "" {
				return nil, fmt.Errorf("two URLs: %s and %s", rawURL, w)
			}
			rawURL = w
		}
		if err != nil {
			return nil, err
		}
	}
	all := append(data, urlencoded...)
	var body io.Reader
	if get {
		if len(all) > 0 {
			sep := "?"
			if strings.Contains(rawURL, "?") {
				sep = "&"
			}
			rawURL += sep + strings.Join(all, "&")
		}
		if method == "" {
			method = "GET"
		}
	} else if len(all) > 0 {
		body = strings.NewReader(strings.Join(all, "&"))
		if method == "" {
			method = "POST"
		}
	}
	if method == "" {
		method = "GET"
	}
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		return nil, err
	}
	if body != nil && !get {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded") // curl's default for -d
	}
	for _, h := range headers {
		req.Header.Set(h[0], h[1])
	}
	return req, nil
}

// TestDocExamples runs every curl example of docs/api.md, in order, against
// a live server on an empty database, and checks each status.
func TestDocExamples(t *testing.T) {
	t.Parallel()
	if !slices.Contains(channels.Types(), "simulator") {
		channels.Register("simulator", func(channels.Config) (channels.Channel, error) { return testChannel{}, nil })
	}
	b := setup(t)
	_, key, err := CreateKey(context.Background(), b.store, "doc", []string{ScopeAdmin}, KeyOptions{})
	require.NoError(t, err)
	env := map[string]string{"HERMOD_URL": b.srv.URL, "HERMOD_KEY": key}

	examples := readDocExamples(t, "../docs/api.md")
	require.GreaterOrEqual(t, len(examples), 25, "docs/api.md lost examples")
	for _, ex := range examples {
		words, err := shellWords(ex.cmd, env)
		require.NoError(t, err, "docs/api.md:%d", ex.line)
		req, err := curlRequest(words)
		require.NoError(t, err, "docs/api.md:%d", ex.line)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err, "docs/api.md:%d", ex.line)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, ex.status, resp.StatusCode, "docs/api.md:%d: %s\n%s", ex.line, ex.cmd, body)
		if resp.StatusCode >= 400 && !strings.HasPrefix(req.URL.Path, "/cgi-bin/") {
			require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"), "docs/api.md:%d", ex.line)
		}
	}
}

func TestShellWords(t *testing.T) {
	t.Parallel()
	w, err := shellWords(`curl -d '{"a":'\''x'\''}' "$U/p" a\ b`, map[string]string{"U": "http://h"})
	require.NoError(t, err)
	require.Equal(t, []string{"curl", "-d", `{"a":'x'}`, "http://h/p", "a b"}, w)
}
