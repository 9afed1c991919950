package sqlserver

import (
	"database/sql"
	"io/fs"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-sql/civil"
	mssql "github.com/microsoft/go-mssqldb"
	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/procedures"
	schema "github.com/hermod-sms/hermod/sql"
	"github.com/hermod-sms/hermod/store"
)

func TestParseURL(t *testing.T) {
	t.Parallel()

	t.Run("sqlserver", func(t *testing.T) {
		t.Parallel()
		cfg, err := parseURL("sqlserver://hermod:s3cret@db.example.com:1433?database=sms")
		require.NoError(t, err)
		require.False(t, cfg.azure)
		require.Equal(t, "sms", cfg.database)
		u, err := url.Parse(cfg.dsn)
		require.NoError(t, err)
		require.Equal(t, "sqlserver", u.Scheme)
		require.Equal(t, "db.example.com:1433", u.Host)
		require.Equal(t, "hermod", u.Query().Get("app name"), "Hermod names itself to the server")
		pw, _ := u.User.Password()
		require.Equal(t, "s3cret", pw, "the driver gets the password")
		require.NotContains(t, cfg.redacted, "s3cret", "messages never show it")
	})
	t.Run("named instance and own app name", func(t *testing.T) {
		t.Parallel()
		cfg, err := parseURL("SQLSERVER://sa:pw@host/SQLEXPRESS?database=sms&app+name=crm")
		require.NoError(t, err)
		u, err := url.Parse(cfg.dsn)
		require.NoError(t, err)
		require.Equal(t, "sqlserver", u.Scheme)
		require.Equal(t, "/SQLEXPRESS", u.Path)
		require.Equal(t, "crm", u.Query().Get("app name"))
	})
	t.Run("azuresql becomes sqlserver for the driver", func(t *testing.T) {
		t.Parallel()
		cfg, err := parseURL("azuresql://myserver.database.windows.net?database=sms&fedauth=ActiveDirectoryManagedIdentity")
		require.NoError(t, err)
		require.True(t, cfg.azure)
		require.True(t, strings.HasPrefix(cfg.dsn, "sqlserver://myserver.database.windows.net?"), cfg.dsn)
		u, err := url.Parse(cfg.dsn)
		require.NoError(t, err)
		require.Equal(t, "ActiveDirectoryManagedIdentity", u.Query().Get("fedauth"))
	})
	t.Run("initial catalog", func(t *testing.T) {
		t.Parallel()
		cfg, err := parseURL("sqlserver://host?initial+catalog=sms")
		require.NoError(t, err)
		require.Equal(t, "sms", cfg.database)
	})
	t.Run("secrets in the query are redacted", func(t *testing.T) {
		t.Parallel()
		cfg, err := parseURL("azuresql://srv.database.windows.net?database=sms&fedauth=ActiveDirectoryServicePrincipal&user+id=app&password=topsecret&ClientSecret=alsosecret")
		require.NoError(t, err)
		require.Contains(t, cfg.dsn, "topsecret", "the driver gets the secret")
		require.NotContains(t, cfg.redacted, "topsecret")
		require.NotContains(t, cfg.redacted, "alsosecret")
		require.Contains(t, cfg.redacted, "srv.database.windows.net")
	})
	t.Run("errors", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct{ url, want string }{
			{"postgres://u:secretpw@host/db", "unsupported scheme"},
			{"azuresql://myserver.database.windows.net?database=sms&password=secretpw", "fedauth"},
			{"sqlserver://?database=sms", "no host"},
			{"sqlserver://u:secretpw@host:bad port", "not a valid URL"},
		} {
			_, err := parseURL(tc.url)
			require.ErrorIs(t, err, store.ErrInvalid, tc.url)
			require.Contains(t, err.Error(), tc.want, tc.url)
			require.NotContains(t, err.Error(), "secretpw", "an error never repeats the password")
		}
	})
}

func TestParams(t *testing.T) {
	t.Parallel()

	require.Equal(t, mssql.NullDateTime{}, dt(time.Time{}), "typed NULLs: Babelfish refuses untyped ones")
	at := time.Date(2024, 3, 1, 13, 14, 15, 123000000, time.FixedZone("CET", 3600))
	got, ok := dt(at).(civil.DateTime)
	require.True(t, ok, "instants go as DATETIME2 (civil.DateTime), not DATETIMEOFFSET")
	require.Equal(t, civil.DateTime{Date: civil.Date{Year: 2024, Month: 3, Day: 1}, Time: civil.Time{Hour: 12, Minute: 14, Second: 15, Nanosecond: 123000000}}, got, "in UTC")

	require.Equal(t, sql.NullString{}, nstr(""))
	require.Equal(t, "x", nstr("x"))
	require.Equal(t, sql.NullInt32{}, chanArg(0))
	require.Equal(t, int32(7), chanArg(7), "channel IDs go as INT")
	require.Equal(t, int64(1)<<40, chanArg(1<<40))
	require.Equal(t, sql.NullInt64{}, intPtr(nil))
	five := 5
	require.Equal(t, int64(5), intPtr(&five))
}

func TestDurationArgs(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		d            time.Duration
		secs, millis int32
	}{
		{0, 0, 0},
		{1500 * time.Millisecond, 1, 500},
		{-1500 * time.Millisecond, -1, -500},
		{time.Hour, 3600, 0},
		{-time.Second, -1, 0},
		{999 * time.Microsecond, 0, 0},
		{200 * 365 * 24 * time.Hour, 1<<31 - 1, 0}, // clamped to DATEADD's INT
	} {
		secs, millis := durationArgs(tc.d)
		require.Equal(t, tc.secs, secs, tc.d.String())
		require.Equal(t, tc.millis, millis, tc.d.String())
	}
	require.Equal(t, "DATEADD(MILLISECOND, @p3, DATEADD(SECOND, @p2, @now))", addDuration("@now", "@p2", "@p3"))
}

func TestUTC(t *testing.T) {
	t.Parallel()

	require.True(t, utc(sqlNullTime(time.Time{}, false)).IsZero())
	// go-mssqldb labels a DATETIME2 with the connection's location: the wall
	// clock is UTC whatever the label.
	got := utc(sqlNullTime(time.Date(2024, 1, 2, 3, 4, 5, 6000000, time.FixedZone("X", 7200)), true))
	require.Equal(t, time.Date(2024, 1, 2, 3, 4, 5, 6000000, time.UTC), got)
	require.Equal(t, time.UTC, got.Location())
}

func TestBucket(t *testing.T) {
	t.Parallel()

	for n, want := range map[int]int{0: 1, 1: 1, 2: 2, 3: 4, 4: 4, 5: 8, 64: 64, 65: 128, 1000: 1024} {
		require.Equal(t, want, bucket(n), "bucket(%d)", n)
	}
	// The text of a statement depends on the bucket only.
	five, _ := buildMarkFailed(make([]store.FailParams, 5))
	seven, _ := buildMarkFailed(make([]store.FailParams, 7))
	nine, _ := buildMarkFailed(make([]store.FailParams, 9))
	require.Equal(t, five, seven)
	require.NotEqual(t, seven, nine)
	in := func(n int) []store.NewMessage {
		m := make([]store.NewMessage, n)
		for i := range m {
			m[i].ToAddress = "+1"
		}
		return m
	}
	a, _ := buildInsert(in(3))
	b, _ := buildInsert(in(4))
	require.Equal(t, a, b)
}

func TestChunks(t *testing.T) {
	t.Parallel()

	require.Empty(t, chunks(0, 10, 100))
	require.Equal(t, [][2]int{{0, 5}}, chunks(5, 10, 100))
	// At most 100 items, in runs of a power of two (padded to their bucket).
	require.Equal(t, [][2]int{{0, 64}, {64, 128}, {128, 192}, {192, 250}}, chunks(250, 10, 100))
	// 16 parameters per item: 125 fit under maxParams, 64 of a power of two.
	c := chunks(300, 16, 0)
	require.Equal(t, [][2]int{{0, 64}, {64, 128}, {128, 192}, {192, 256}, {256, 300}}, c)
	for _, r := range c {
		require.LessOrEqual(t, bucket(r[1]-r[0])*16, maxParams)
	}
	require.Equal(t, [][2]int{{0, 1}, {1, 2}}, chunks(2, maxParams*2, 0), "at least one item per chunk")
}

func TestLastByID(t *testing.T) {
	t.Parallel()

	got := lastByID([]store.FailParams{{ID: 1, Error: "a"}, {ID: 2, Error: "b"}, {ID: 1, Error: "c"}},
		func(p store.FailParams) int64 { return p.ID })
	require.Equal(t, []store.FailParams{{ID: 1, Error: "c"}, {ID: 2, Error: "b"}}, got)
}

func TestTraceLine(t *testing.T) {
	t.Parallel()

	// @stamp, which batchPrefix declares, is "2006-01-02 15:04:05.000":
	// the contract's Trace format (checked live by the conformance suite).
	line := traceLine("N'QUEUED'", "N'routed'")
	require.Equal(t, "@stamp + N' ' + N'QUEUED' + N' ' + N'routed' + NCHAR(10)", line)
	require.Contains(t, batchPrefix, "DECLARE @stamp NVARCHAR(23) = "+stampNow)
	require.Equal(t, "CONVERT(NVARCHAR(19), m.X, 120) + N'.' + RIGHT(N'00' + CONVERT(NVARCHAR(3), DATEPART(MILLISECOND, m.X)), 3)", stamp("m.X"))
	require.Equal(t, "hermod.Messages.Trace + "+line, appendTrace("hermod.Messages", "N'QUEUED'", "N'routed'"))
}

var placeholder = regexp.MustCompile(`@p(\d+)\b`)

// requirePlaceholders checks that a statement uses exactly @p1..@pN for N
// arguments, so that the driver's positional arguments line up.
func requirePlaceholders(t *testing.T, q string, vals []any) {
	t.Helper()
	used := map[string]bool{}
	for _, m := range placeholder.FindAllStringSubmatch(q, -1) {
		used[m[1]] = true
	}
	require.Len(t, used, len(vals), "placeholders in use vs arguments:\n%s", q)
	for i := 1; i <= len(vals); i++ {
		require.True(t, used[strconv.Itoa(i)], "@p%d is not used:\n%s", i, q)
	}
	require.LessOrEqual(t, len(vals), 2100, "SQL Server takes at most 2,100 parameters")
	for i, v := range vals {
		require.NotNil(t, v, "@p%d is an untyped NULL (TDS type 0x1F, which Babelfish refuses): pass sql.NullString{}, sql.NullInt32{}, mssql.NullDateTime{} ...:\n%s", i+1, q)
	}
}

func sqlNullTime(t time.Time, valid bool) sql.NullTime { return sql.NullTime{Time: t, Valid: valid} }

func TestBuildList(t *testing.T) {
	t.Parallel()

	q, vals := buildList(store.MessageFilter{})
	require.Equal(t, []any{int64(100)}, vals, "default limit 100")
	require.NotContains(t, q, "WHERE")
	require.Contains(t, q, "ORDER BY m.ID DESC")
	requirePlaceholders(t, q, vals)

	since := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	q, vals = buildList(store.MessageFilter{
		Status: []string{"SENT", "DELIVERED"}, Direction: "OUT", ChannelID: 3, Address: "+31",
		BatchID: "b", CampaignID: "c", Since: since, Until: since.Add(time.Hour),
		AfterID: 50, Ascending: true, Limit: 20000,
	})
	requirePlaceholders(t, q, vals)
	require.Contains(t, q, "m.Status IN (@p1, @p2)")
	require.Contains(t, q, "(m.ToAddress = @p5 OR m.FromAddress = @p5)")
	require.Contains(t, q, "m.ID > @p10")
	require.Contains(t, q, "ORDER BY m.ID ASC")
	require.Equal(t, int64(10000), vals[len(vals)-1], "the limit is capped at 10000")
	require.Equal(t, int32(3), vals[3], "ChannelID as INT")
	require.IsType(t, civil.DateTime{}, vals[7], "times as DATETIME2")

	q, _ = buildList(store.MessageFilter{AfterID: 50})
	require.Contains(t, q, "m.ID < @p1", "descending pages go down")
}

func TestBuildInsert(t *testing.T) {
	t.Parallel()

	ton := 1
	msgs := []store.NewMessage{
		{ToAddress: "+1", Body: "a", FromTON: &ton, ClientReference: "r1", ScheduledTime: time.Now()},
		{ToAddress: "+2", NoDeliveryReport: true},
	}
	q, vals := buildInsert(msgs)
	requirePlaceholders(t, q, vals)
	require.Len(t, vals, 2*len(insertColumns))
	require.Contains(t, q, "ORDER BY v.Ord", "identities are assigned in input order")
	require.NotContains(t, strings.ToUpper(q), "MERGE")
	// The second message's RequestDeliveryReport is false.
	require.Equal(t, false, vals[len(insertColumns)+10])
	require.Equal(t, true, vals[10])
	require.Equal(t, "r1", vals[13])
	require.Equal(t, sql.NullString{}, vals[len(insertColumns)+13], "no ClientReference is an NVARCHAR NULL")
}

func TestBuildRoute(t *testing.T) {
	t.Parallel()

	q, vals := buildRoute([]int64{11, 12, 13}, 500)
	requirePlaceholders(t, q, vals)
	require.Contains(t, q, "CASE hermod.Messages.ID % 3 WHEN 0 THEN @p1 WHEN 1 THEN @p2 WHEN 2 THEN @p3 END")
	require.Equal(t, []any{int32(11), int32(12), int32(13), int64(500)}, vals)
	require.Contains(t, q, "WITH (UPDLOCK, READPAST, ROWLOCK, READCOMMITTEDLOCK)")

	q, vals = buildRoute(nil, 10)
	requirePlaceholders(t, q, vals)
	require.Contains(t, q, "CAST(NULL AS INT)", "no channels: unassigned messages get none")
}

func TestBuildBatches(t *testing.T) {
	t.Parallel()

	q, vals := buildMarkSent([]store.SentParams{
		{ID: 1, Owner: "n", Reference: "r1", Parts: []store.Part{{PartNumber: 1, Reference: "r1"}, {PartNumber: 2, Reference: "r2"}}},
		{ID: 2, Owner: "n", Reference: "x"},
	})
	requirePlaceholders(t, q, vals)
	require.Len(t, vals, 2*5+4*4, "two messages and three parts (one made from Reference), the parts padded to four")

	q, vals = buildMarkRetry([]store.RetryParams{{ID: 1, Owner: "n", Delay: 90 * time.Second, Error: "throttled"}})
	requirePlaceholders(t, q, vals)
	require.Equal(t, int32(90), vals[2])
	require.Equal(t, "1m30s", vals[4])

	q, vals = buildMarkFailed([]store.FailParams{{ID: 1, Owner: "n"}, {ID: 2, Owner: "n"}})
	requirePlaceholders(t, q, vals)

	q, vals = buildReportApply([]store.ReportParams{{ChannelID: 1, Reference: "a", Status: "DELIVERED"}})
	requirePlaceholders(t, q, vals)

	q, vals = buildReceive([]store.Incoming{{ToAddress: "+1"}, {ToAddress: "+2", ChannelID: 4}})
	requirePlaceholders(t, q, vals)
	require.Contains(t, q, "ORDER BY v.Ord")
}

func TestScripts(t *testing.T) {
	t.Parallel()

	scripts, err := loadScripts(procedures.SQLServer)
	require.NoError(t, err)
	require.NotEmpty(t, scripts)
	names := map[string]bool{}
	stub := regexp.MustCompile(`^(?s)(?:\s*--[^\n]*\n)*\s*SET ANSI_NULLS ON;\s*SET QUOTED_IDENTIFIER ON;\s*IF OBJECT_ID\(N'hermod\.(\w+)', N'(P|V|FN|IF|TF|TR)'\) IS NULL\s+EXEC\(N'CREATE (PROCEDURE|VIEW|FUNCTION|TRIGGER) hermod\.(\w+) `)
	for _, s := range scripts {
		require.Len(t, s.Batches, 2, "%s: the portable form has two batches: the stub, then ALTER", s.Name)
		m := stub.FindStringSubmatch(s.Batches[0].SQL)
		require.NotNil(t, m, "%s: the first batch sets ANSI_NULLS and QUOTED_IDENTIFIER ON (filtered indexes need them) and creates a stub when the object is missing:\n%s", s.Name, s.Batches[0].SQL)
		require.Equal(t, m[1], m[4], "%s: the stub checks and creates the same object", s.Name)
		require.Regexp(t, `(?m)^ALTER `+m[3]+` hermod\.`+m[1]+`\b`, s.Batches[1].SQL, "%s: the second batch ALTERs it", s.Name)
		require.Equal(t, m[1]+".sql", strings.TrimPrefix(s.Name, "sqlserver/"), "one object per file, named after it")
		names[m[1]] = true
		for _, b := range s.Batches {
			require.Equal(t, 1, b.Count)
			require.NotRegexp(t, `(?i)\bCREATE\s+OR\s+ALTER\b`, b.SQL)
		}
	}
	require.True(t, names["SendMessage"])
	require.True(t, names["CancelMessage"])
}

func TestMigrationsAreSingleBatches(t *testing.T) {
	t.Parallel()

	files, err := fs.Glob(schema.SQLServer, "sqlserver/*.sql")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		data, err := fs.ReadFile(schema.SQLServer, f)
		require.NoError(t, err)
		batches, err := splitBatches(string(data))
		require.NoError(t, err, f)
		require.Len(t, batches, 1, "%s: golang-migrate sends a migration as one batch: no GO lines", f)
	}
	v, err := latestVersion()
	require.NoError(t, err)
	require.GreaterOrEqual(t, v, uint(1))
}
