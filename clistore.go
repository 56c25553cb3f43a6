package main

import (
	"context"
	"errors"
	"flag"
	"os"
	"strings"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/adapt"
	"keycard/internal/server"
	"keycard/store"
	pgstore "keycard/store/postgres"
)

// storeFlags are the flags that choose a command-line tool's store: the
// bbolt file (--db, default KEYCARD_DB) or, when --database-url or
// KEYCARD_DATABASE_URL is set, PostgreSQL (SPEC "Beyond one machine").
type storeFlags struct {
	fs    *flag.FlagSet
	db    *string
	dbURL *string
}

// addStoreFlags registers --db and --database-url on fs.
func addStoreFlags(fs *flag.FlagSet, dbUsage string) *storeFlags {
	return &storeFlags{
		fs:    fs,
		db:    fs.String("db", envOr("KEYCARD_DB", "keycard.db"), dbUsage),
		dbURL: fs.String("database-url", os.Getenv("KEYCARD_DATABASE_URL"), "the PostgreSQL database (default KEYCARD_DATABASE_URL); the bbolt file at --db when empty"),
	}
}

// set reports whether the flag name was given on the command line.
func (f *storeFlags) set(name string) bool {
	given := false
	f.fs.Visit(func(fl *flag.Flag) { given = given || fl.Name == name })
	return given
}

// postgres reports whether the flags name PostgreSQL; an explicit --db
// beside a database URL is refused, so that nobody reads a stale bbolt file
// believing it is the shared database (or the other way round).
func (f *storeFlags) postgres() (bool, error) {
	if *f.dbURL == "" {
		return false, nil
	}
	if f.set("db") {
		return false, usageError("%s: --db names a bbolt file and %s a PostgreSQL database: give one (--database-url= reads the file)", f.fs.Name(), f.urlSource())
	}
	return true, nil
}

// urlSource names where the database URL came from, for its errors.
func (f *storeFlags) urlSource() string {
	if f.set("database-url") {
		return "--database-url"
	}
	return "KEYCARD_DATABASE_URL"
}

// cliStore is the store a command-line tool opened: exactly one of bolt and
// pg is set.
type cliStore struct {
	bolt *store.DB
	pg   *pgstore.DB
}

// open opens the store the flags name. A bbolt file must exist;
// PostgreSQL's URL is checked first, and its errors never repeat the
// password.
func (f *storeFlags) open(ctx context.Context) (*cliStore, error) {
	pg, err := f.postgres()
	if err != nil {
		return nil, err
	}
	if !pg {
		if _, err := os.Stat(*f.db); err != nil {
			return nil, err
		}
		db, err := openDB(*f.db)
		if err != nil {
			return nil, err
		}
		return &cliStore{bolt: db}, nil
	}
	db, err := openPostgres(ctx, *f.dbURL, f.urlSource())
	if err != nil {
		return nil, err
	}
	return &cliStore{pg: db}, nil
}

// openPostgres opens the PostgreSQL store at url; src names the flag or
// variable it came from in the (one-line, password-free) errors.
func openPostgres(ctx context.Context, url, src string) (*pgstore.DB, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	db, err := pgstore.Open(ctx, url, pgstore.Options{MaxConns: 4})
	if err != nil {
		msg := err.Error()
		if src != "KEYCARD_DATABASE_URL" {
			msg = strings.Replace(msg, "KEYCARD_DATABASE_URL", src, 1)
		}
		// pgstore's errors are one line already; make sure of it.
		return nil, access.Wrap(access.CodeOf(err), err, "%s", strings.Join(strings.Fields(msg), " "))
	}
	return db, nil
}

// Store is the store as the use cases see it.
func (s *cliStore) Store() handlers.Store {
	if s.pg != nil {
		return adapt.Postgres(s.pg)
	}
	return adapt.Store(s.bolt)
}

// Static is where a static connector keeps keycard's memberships.
func (s *cliStore) Static() adapt.StaticStore {
	if s.pg != nil {
		return s.pg
	}
	return s.bolt
}

// Chain is the store whose audit chain is walked.
func (s *cliStore) Chain() server.ChainStore {
	if s.pg != nil {
		return s.pg
	}
	return s.bolt
}

// Where names the store for messages: the file, or host:port/database.
func (s *cliStore) Where() string {
	if s.pg != nil {
		return "PostgreSQL at " + s.pg.Where()
	}
	return s.bolt.Path()
}

func (s *cliStore) Close() error {
	if s.pg != nil {
		return s.pg.Close()
	}
	return s.bolt.Close()
}

// chainCheck verifies the chain up to seq and reads event seq's hash, for
// keycard export verify, on either store.
func chainCheck(st handlers.Store, verify handlers.ChainVerifier) handlers.ChainCheck {
	return func(seq uint64) (string, bool, string, error) {
		var ev access.Event
		var found bool
		err := st.View(func(tx handlers.Tx) error {
			e, err := tx.Event(seq)
			if access.CodeOf(err) == access.CodeNotFound {
				return nil
			}
			ev, found = e, err == nil
			return err
		})
		if err != nil {
			return "", false, "", err
		}
		_, _, problem, err := verify(seq)
		if err != nil {
			return "", false, "", err
		}
		return ev.Hash, found, problem, nil
	}
}

// pgBackupRefusal is keycard backup's answer with PostgreSQL.
func pgBackupRefusal() error {
	return errors.New("backup: keycard makes no backups of PostgreSQL: back the database up with pg_dump, " +
		`e.g. pg_dump --format=custom --file=keycard-$(date +%F).dump "$KEYCARD_DATABASE_URL" ` +
		`(restore into an empty database with pg_restore --dbname=URL FILE), or your provider's snapshots; see docs/operations.md`)
}
