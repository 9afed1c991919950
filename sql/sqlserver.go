package schema

import "embed"

// SQLServer holds the sqlserver migrations under the folder "sqlserver".
//
//go:embed sqlserver/*.sql
var SQLServer embed.FS
