package api

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/api/client"
	"github.com/hermod-sms/hermod/store/sqlite"
)

// TestCrashAfterCreated runs the server in a child process, sends a
// message, kills the child with SIGKILL right after the 201, and checks that
// the message is in the database.
func TestCrashAfterCreated(t *testing.T) {
	t.Parallel()
	if os.Getenv("HERMOD_API_CRASH_CHILD") != "" {
		t.Skip("child")
	}
	db := filepath.Join(t.TempDir(), "hermod.db")
	st, err := sqlite.Open(t.Context(), db, sqlite.Options{})
	require.NoError(t, err)
	_, key, err := CreateKey(t.Context(), st, "crash", []string{ScopeSend}, KeyOptions{})
	require.NoError(t, err)
	require.NoError(t, st.Close())

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
	cmd.Env = append(os.Environ(), "HERMOD_API_CRASH_CHILD="+db)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(out)
	var addr string
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "LISTENING "); ok {
			addr = a
			break
		}
	}
	require.NotEmpty(t, addr, "the child did not start")

	c := client.New("http://"+addr, key)
	res, err := c.Send(context.Background(), client.NewMessage{ToAddress: "+31612345678", Body: "survives", ClientReference: "crash-1"})
	require.NoError(t, err)
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()

	st, err = sqlite.Open(context.Background(), db, sqlite.Options{})
	require.NoError(t, err)
	defer st.Close()
	m, err := st.MessageGet(context.Background(), res.ID)
	require.NoError(t, err)
	require.Equal(t, "survives", m.Body)
	require.Equal(t, "crash-1", m.ClientReference)
}

// TestCrashChild is the server process of TestCrashAfterCreated.
func TestCrashChild(t *testing.T) {
	db := os.Getenv("HERMOD_API_CRASH_CHILD")
	if db == "" {
		t.Skip("run by TestCrashAfterCreated")
	}
	st, err := sqlite.Open(context.Background(), db, sqlite.Options{})
	require.NoError(t, err)
	s, err := NewServer(Config{Store: st, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	fmt.Println("LISTENING " + ln.Addr().String())
	_ = http.Serve(ln, s) // until killed
}
