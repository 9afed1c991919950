package schema

import "embed"

// Postgres holds the postgres migrations under the folder "postgres".
//
//go:embed postgres/*.sql
var Postgres embed.FS
