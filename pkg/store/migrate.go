package store

import (
	"context"
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// MigrateResult says what Migrate did with each context stored before namespaces.
type MigrateResult struct {
	// Moved are the ids now stored in the namespace (or that would be, in a dry run).
	Moved []string
	// Conflicts are ids left where they were because the namespace already has a
	// context with that id.
	Conflicts []string
	// Invalid are ids that cannot live in a namespace (e.g. they contain '/'),
	// left where they were.
	Invalid []string
	// Missing are ids asked for (ids) that have no context of the former layout, and
	// ids whose context went (expired, deleted, moved by another Migrate) between
	// being listed and being moved.
	Missing []string
}

// Migrate moves the contexts stored by versions before namespaces
// (<prefix>:ctx:<id>, LegacyDocKey) into namespace: every one of them (found with
// SCAN), or only those in ids. Each move is one RENAMENX, so a context keeps its TTL
// and its layout, is never copied twice and never overwrites a context of the
// namespace; running Migrate again moves nothing more. A dry run only reports what
// would happen. Run it once while no controller writes (the op records of runs in
// flight during the upgrade stay with the old keys).
func (s *Store) Migrate(ctx context.Context, namespace string, ids []string, dryRun bool) (*MigrateResult, error) {
	if err := CheckNamespace(namespace); err != nil {
		return nil, err
	}
	if s.topology == Cluster {
		// RENAMENX moves a key to another hash slot here, which a Cluster refuses
		// (CROSSSLOT); the former layout predates Cluster support, so a Cluster holds
		// none: migrate on the single Redis (or Sentinel primary) before moving.
		return nil, errors.New("store: migrate is not supported on a Redis Cluster (the former layout predates Cluster support; migrate on a single Redis or a Sentinel primary before moving to a Cluster)")
	}
	res := &MigrateResult{}
	// SCAN may return a key more than once; so may ids.
	seen := map[string]bool{}
	if len(ids) > 0 {
		for _, id := range ids {
			if seen[id] {
				continue
			}
			seen[id] = true
			key := s.LegacyDocKey(id)
			n, err := s.rdb.Exists(ctx, key).Result()
			if err != nil {
				return res, s.wrap(err, "EXISTS", key)
			}
			if n == 0 {
				res.Missing = append(res.Missing, id)
				continue
			}
			if err := s.migrateOne(ctx, namespace, id, dryRun, res); err != nil {
				return res, err
			}
		}
		return res, nil
	}
	legacyPrefix := s.LegacyDocKey("")
	pattern := globEscape(legacyPrefix) + "*"
	iter := s.rdb.Scan(ctx, 0, pattern, 500).Iterator()
	for iter.Next(ctx) {
		id := strings.TrimPrefix(iter.Val(), legacyPrefix)
		if seen[id] {
			continue
		}
		seen[id] = true
		if err := s.migrateOne(ctx, namespace, id, dryRun, res); err != nil {
			return res, err
		}
	}
	if err := iter.Err(); err != nil {
		return res, s.wrap(err, "SCAN", pattern)
	}
	return res, nil
}

// migrateOne moves the context of the former layout id into namespace, and says
// what it did in res.
func (s *Store) migrateOne(ctx context.Context, namespace, id string, dryRun bool, res *MigrateResult) error {
	if CheckID(id) != nil {
		res.Invalid = append(res.Invalid, id)
		return nil
	}
	key, target := s.LegacyDocKey(id), s.DocKey(Ref(namespace, id))
	if dryRun {
		n, err := s.rdb.Exists(ctx, target).Result()
		if err != nil {
			return s.wrap(err, "EXISTS", target)
		}
		if n > 0 {
			res.Conflicts = append(res.Conflicts, id)
		} else {
			res.Moved = append(res.Moved, id)
		}
		return nil
	}
	moved, err := s.rdb.RenameNX(ctx, key, target).Result()
	switch {
	case redis.HasErrorPrefix(err, "no such key"):
		res.Missing = append(res.Missing, id)
	case err != nil:
		return s.wrap(err, "RENAMENX", key)
	case moved:
		res.Moved = append(res.Moved, id)
	default:
		res.Conflicts = append(res.Conflicts, id)
	}
	return nil
}

// globEscape escapes the glob characters of a SCAN MATCH pattern, so that the
// pattern matches s literally.
func globEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`, "]", `\]`).Replace(s)
}
