// Package schema embeds Hermod's versioned schema migrations, one folder per
// backend (sqlite, postgres, sqlserver), in golang-migrate's file naming
// (NNNN_name.up.sql / NNNN_name.down.sql). Each backend's store applies its
// own folder through golang-migrate's iofs source.
package schema
