package procedures

import "embed"

// Postgres holds the postgres repeatable scripts under the folder "postgres".
//
//go:embed postgres/*.sql
var Postgres embed.FS
