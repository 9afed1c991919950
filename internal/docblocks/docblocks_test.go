package docblocks

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	t.Parallel()

	text := "# Title\n" +
		"```sh\nhermod run\n```\n" +
		"A code span is no fence: ```sql not a block```\n" +
		"``` ```x``` inline\n" +
		"```sql sqlserver first\r\nSELECT 1;\r\nGO\r\n```\r\n" +
		"  ~~~~ sql postgres first\n  SELECT 1;\n   ~~~~\n" +
		"```\nplain text, no language\n```\n" +
		"````sql sqlite nested\nSELECT '```';\n```\nSELECT 2;\n````\n"
	blocks, err := Parse("x.md", text)
	require.NoError(t, err)
	require.Equal(t, []Block{
		{File: "x.md", Line: 8, Backend: SQLServer, Name: "first", SQL: "SELECT 1;\nGO\n"},
		{File: "x.md", Line: 12, Backend: Postgres, Name: "first", SQL: "SELECT 1;\n"},
		{File: "x.md", Line: 18, Backend: SQLite, Name: "nested", SQL: "SELECT '```';\n```\nSELECT 2;\n"},
	}, blocks)
	require.Len(t, Select(blocks, Postgres), 1)
}

func TestParseRejectsUnmarkedSQL(t *testing.T) {
	t.Parallel()

	for name, text := range map[string]string{
		"no backend":        "```sql\nSELECT 1;\n```\n",
		"no name":           "```sql sqlserver\nSELECT 1;\n```\n",
		"unknown backend":   "```sql mysql x\nSELECT 1;\n```\n",
		"bad name":          "```sql sqlite My_Example\nSELECT 1;\n```\n",
		"extra word":        "```sql sqlite a b\nSELECT 1;\n```\n",
		"dialect language":  "```tsql\nSELECT 1;\n```\n",
		"postgresql":        "```postgresql x\nSELECT 1;\n```\n",
		"empty":             "```sql sqlite empty\n\n```\n",
		"never closed":      "```sql sqlite open\nSELECT 1;\n",
		"closed by a tilde": "```sql sqlite open\nSELECT 1;\n~~~\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("x.md", text)
			require.Error(t, err)
			require.Contains(t, err.Error(), "x.md:1")
		})
	}
}

func TestLoadRepositoryDocs(t *testing.T) {
	t.Parallel()

	blocks, err := Load("../..")
	require.NoError(t, err)
	for _, backend := range []string{SQLServer, Postgres, SQLite} {
		require.NotEmpty(t, Select(blocks, backend), "no %s example found", backend)
	}
	// The trigger example of docs/sql-integration.md, with its GO lines.
	var found bool
	for _, b := range blocks {
		if b.Backend == SQLServer && b.Name == "shop-trigger" {
			found = true
			require.Equal(t, "docs/sql-integration.md", b.File)
			require.Contains(t, b.SQL, "\nGO\n")
			require.Contains(t, b.SQL, "CREATE TRIGGER hermod.TR_Messages_Shop ON hermod.Messages")
		}
	}
	require.True(t, found, "the sqlserver shop-trigger example is missing")
}
