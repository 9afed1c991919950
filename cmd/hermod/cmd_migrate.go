package main

import (
	"context"
	"fmt"
	"strconv"
)

func (a *app) cmdMigrateUp(ctx context.Context, args []string) error {
	if _, err := a.parse(a.newFlagSet("migrate up"), "hermod migrate up", args, 0, 0); err != nil {
		return err
	}
	s, err := a.openStore(ctx, false)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.MigrateUp(ctx); err != nil {
		return fmt.Errorf("migrate %s up: %w", a.dbDisplay(), err)
	}
	cur, latest, _, err := s.MigrateStatus(ctx)
	if err != nil {
		return fmt.Errorf("read the migration status: %w", err)
	}
	fmt.Fprintf(a.stdout, "%s is at schema version %d (latest %d)\n", a.dbDisplay(), cur, latest)
	return nil
}

func (a *app) cmdMigrateDown(ctx context.Context, args []string) error {
	const usage = "hermod migrate down [N|all]"
	pos, err := a.parse(a.newFlagSet("migrate down"), usage, args, 0, 1)
	if err != nil {
		return err
	}
	n := 1
	if len(pos) == 1 {
		if pos[0] == "all" {
			n = 0
		} else if n, err = strconv.Atoi(pos[0]); err != nil || n < 1 {
			return usagef("%q is not a number of migrations: use a positive number or all (usage: %s)", pos[0], usage)
		}
	}
	s, err := a.openStore(ctx, false)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.MigrateDown(ctx, n); err != nil {
		return fmt.Errorf("migrate %s down: %w", a.dbDisplay(), err)
	}
	cur, latest, _, err := s.MigrateStatus(ctx)
	if err != nil {
		return fmt.Errorf("read the migration status: %w", err)
	}
	fmt.Fprintf(a.stdout, "%s is at schema version %d (latest %d)\n", a.dbDisplay(), cur, latest)
	return nil
}

func (a *app) cmdMigrateStatus(ctx context.Context, args []string) error {
	if _, err := a.parse(a.newFlagSet("migrate status"), "hermod migrate status", args, 0, 0); err != nil {
		return err
	}
	s, err := a.openStore(ctx, false)
	if err != nil {
		return err
	}
	defer s.Close()
	cur, latest, dirty, err := s.MigrateStatus(ctx)
	if err != nil {
		return fmt.Errorf("read the migration status of %s: %w", a.dbDisplay(), err)
	}
	state := "up to date"
	switch {
	case dirty:
		state = "DIRTY: a migration failed half-way; fix the schema by hand, then run hermod migrate up"
	case cur < latest:
		state = fmt.Sprintf("%d migration(s) pending: run hermod migrate up", latest-cur)
	case cur > latest:
		state = "newer than this hermod: upgrade hermod"
	}
	fmt.Fprintf(a.stdout, "database: %s\ncurrent version: %d\nlatest version: %d\nstate: %s\n", a.dbDisplay(), cur, latest, state)
	return nil
}
