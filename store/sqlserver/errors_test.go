package sqlserver

import (
	"errors"
	"fmt"
	"testing"

	mssql "github.com/microsoft/go-mssqldb"
	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/store"
)

func TestMapError(t *testing.T) {
	t.Parallel()

	cases := []struct {
		name     string
		err      mssql.Error
		is       error
		contains []string
	}{
		{
			name: "2601 on the ClientReference index",
			err: mssql.Error{Number: 2601, Message: "Cannot insert duplicate key row in object 'hermod.Messages' with unique index " +
				"'UX_Messages_ClientReference'. The duplicate key value is (order-1)."},
			is:       store.ErrConflict,
			contains: []string{"ClientReference exists already", "UX_Messages_ClientReference"},
		},
		{
			name: "2627 on a unique constraint",
			err: mssql.Error{Number: 2627, Message: "Violation of UNIQUE KEY constraint 'UQ_Channels_Name'. Cannot insert duplicate key " +
				"in object 'hermod.Channels'. The duplicate key value is (sim)."},
			is:       store.ErrConflict,
			contains: []string{"channel with this Name exists already", "UQ_Channels_Name"},
		},
		{
			name: "2627 on a constraint the store does not know",
			err: mssql.Error{Number: 2627, Message: "Violation of PRIMARY KEY constraint 'PK_Custom'. Cannot insert duplicate key " +
				"in object 'hermod.Custom'. The duplicate key value is (1)."},
			is:       store.ErrConflict,
			contains: []string{"the row exists already", "PK_Custom", "hermod.Custom"},
		},
		{
			name: "515 names the column and the fix",
			err: mssql.Error{Number: 515, Message: "Cannot insert the value NULL into column 'ToAddress', table 'sms.hermod.Messages'; " +
				"column does not allow nulls. INSERT fails."},
			is:       store.ErrInvalid,
			contains: []string{"column ToAddress may not be NULL", "give ToAddress a value"},
		},
		{
			name: "547 on a CHECK constraint",
			err: mssql.Error{Number: 547, Message: `The INSERT statement conflicted with the CHECK constraint "CK_Messages_ToAddress". ` +
				`The conflict occurred in database "sms", table "hermod.Messages", column 'ToAddress'.`},
			is:       store.ErrInvalid,
			contains: []string{"ToAddress must not be empty", "CK_Messages_ToAddress"},
		},
		{
			name: "547 on an unknown constraint names column and constraint",
			err: mssql.Error{Number: 547, Message: `The UPDATE statement conflicted with the CHECK constraint "CK_Site_Rule". ` +
				`The conflict occurred in database "sms", table "hermod.Messages", column 'Body'.`},
			is:       store.ErrInvalid,
			contains: []string{"column Body", "CK_Site_Rule"},
		},
		{
			name: "2628 truncation names the column",
			err: mssql.Error{Number: 2628, Message: "String or binary data would be truncated in table 'sms.hermod.Messages', " +
				"column 'ToAddress'. Truncated value: '+3161234567890123456789'."},
			is:       store.ErrInvalid,
			contains: []string{"value for ToAddress is longer than the column allows"},
		},
		{
			name:     "8152 truncation before SQL Server 2019",
			err:      mssql.Error{Number: 8152, Message: "String or binary data would be truncated."},
			is:       store.ErrInvalid,
			contains: []string{"longer than its column allows"},
		},
		{
			name:     "procedure errors: not found",
			err:      mssql.Error{Number: 50004, Message: "hermod.CancelMessage: there is no message with ID 7"},
			is:       store.ErrNotFound,
			contains: []string{"no message with ID 7"},
		},
		{
			name:     "procedure errors: conflict",
			err:      mssql.Error{Number: 50009, Message: "hermod.CancelMessage: message 7 is SENT"},
			is:       store.ErrConflict,
			contains: []string{"message 7 is SENT"},
		},
		{
			name:     "procedure errors: invalid",
			err:      mssql.Error{Number: 50001, Message: "hermod.SendMessage: @ToAddress is empty"},
			is:       store.ErrInvalid,
			contains: []string{"@ToAddress is empty"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()

			err := mapError(fmt.Errorf("driver: %w", tc.err), "doing the thing")
			require.ErrorIs(t, err, tc.is)
			var me mssql.Error
			require.ErrorAs(t, err, &me, "the driver's error stays reachable")
			require.Equal(t, tc.err.Number, me.Number)
			require.Contains(t, err.Error(), "doing the thing")
			for _, c := range tc.contains {
				require.Contains(t, err.Error(), c)
			}
		})
	}
}

func TestMapErrorOther(t *testing.T) {
	t.Parallel()

	require.NoError(t, mapError(nil, "x"))

	plain := errors.New("connection reset")
	err := mapError(plain, "read message 1")
	require.ErrorIs(t, err, plain)
	require.Equal(t, "read message 1: connection reset", err.Error())
	for _, sentinel := range []error{store.ErrConflict, store.ErrInvalid, store.ErrNotFound} {
		require.NotErrorIs(t, err, sentinel)
	}

	deadlock := mssql.Error{Number: 1205, Message: "Transaction was deadlocked"}
	err = mapError(deadlock, "claim")
	require.NotErrorIs(t, err, store.ErrConflict)
	require.True(t, isRetryable(err))
	require.False(t, isRetryable(plain))

	require.True(t, isDuplicate(fmt.Errorf("x: %w", mssql.Error{Number: 2601})))
	require.True(t, isDuplicate(mssql.Error{Number: 2627}))
	require.False(t, isDuplicate(mssql.Error{Number: 547}))
	require.False(t, isDuplicate(plain))
}
