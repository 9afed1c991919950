package procedures

import "embed"

// SQLServer holds the sqlserver repeatable scripts under the folder "sqlserver".
//
//go:embed sqlserver/*.sql
var SQLServer embed.FS
