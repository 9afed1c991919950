package simulator

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// ReadLog reads a simulator log file (setting "log") and returns how many
// times each message ID was accepted. A count above 1 is a duplicate send.
// An incomplete last line (a process killed while writing) is ignored.
func ReadLog(path string) (map[int64]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("simulator: read log: %w", err)
	}
	defer f.Close()
	counts := map[int64]int{}
	r := bufio.NewReader(f)
	for lineNo := 1; ; lineNo++ {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			break // a last line without '\n' is incomplete: ignored
		}
		if err != nil {
			return nil, fmt.Errorf("simulator: read log %s: %w", path, err)
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		if len(line) == 0 {
			continue
		}
		idText, _, _ := bytes.Cut(line, []byte("\t"))
		id, perr := strconv.ParseInt(string(idText), 10, 64)
		if perr != nil {
			return nil, fmt.Errorf("simulator: read log %s line %d: bad message ID %q: %w", path, lineNo, idText, perr)
		}
		counts[id]++
	}
	return counts, nil
}
