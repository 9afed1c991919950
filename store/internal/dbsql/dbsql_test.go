package dbsql

import (
	"database/sql"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestIsConversion(t *testing.T) {
	t.Parallel()
	scan := fmt.Errorf(`sql: Scan error on column index 3, name "Attempts": %w`, errors.New(`converting driver.Value type string ("many") to a int: invalid syntax`))
	require.True(t, IsConversion(scan))
	require.True(t, IsConversion(fmt.Errorf("get message 7: %w", scan)))
	require.True(t, IsConversion(errors.Join(errors.New("rollback"), fmt.Errorf("claim: %w", scan))))
	require.True(t, IsConversion(errors.New("sql: converting argument $1 type: unsupported type chan int")))
	require.True(t, IsConversion(errors.New("sql: expected 3 destination arguments in Scan, not 2")))

	require.False(t, IsConversion(nil))
	require.False(t, IsConversion(errors.New("sql: database is closed")))
	require.False(t, IsConversion(fmt.Errorf("list channels: %w", sql.ErrConnDone)))
	require.False(t, IsConversion(errors.New("read tcp 127.0.0.1:1433: connection reset by peer")))
}
