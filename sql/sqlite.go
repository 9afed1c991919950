package schema

import "embed"

// SQLite holds the sqlite migrations under the folder "sqlite".
//
//go:embed sqlite/*.sql
var SQLite embed.FS
