package store

import "context"

// MigrateOne is migrateOne for the tests of package store_test: it reaches the
// case of a context that goes between SCAN and RENAMENX.
func (s *Store) MigrateOne(ctx context.Context, namespace, id string, dryRun bool, res *MigrateResult) error {
	return s.migrateOne(ctx, namespace, id, dryRun, res)
}
