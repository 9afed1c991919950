//go:build !unix && !windows

package engine

import (
	"os"
	"os/exec"
)

// setChildAttributes leaves the command as it is on this platform.
func setChildAttributes(*exec.Cmd) {}

// askToStop does nothing here: the closed standard input is the request
// to stop, and Process.Kill follows after the timeout.
func askToStop(*os.Process) error { return nil }
