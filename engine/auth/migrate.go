package auth

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/engine/connstate"
	"github.com/ghlflow/ghlflow/engine/internal/rdb"
)

// MoveLegacyKeys moves what earlier versions stored under prefix to the
// current keys: each stored connection's hash and fencing counter to its
// {conn:ID} keys, the connection set to {conns}, a status kept in a
// connection's metadata and the engine's pauses to connstate records. It
// returns how many connections it moved; with nothing to move it costs two
// reads. Run it before the engine starts (`ghlflow run` and `ghlflow
// connect` do).
func MoveLegacyKeys(ctx context.Context, c redis.UniversalClient, prefix string) (int, error) {
	keys := rdb.NewKeys(prefix)
	states := connstate.New(c, prefix)
	if err := moveLegacyPauses(ctx, c, keys, states); err != nil {
		return 0, err
	}
	ids, err := c.SMembers(ctx, keys.LegacyConns()).Result()
	if err != nil {
		return 0, fmt.Errorf("move connections: %w", err)
	}
	for _, id := range ids {
		for from, to := range map[string]string{keys.LegacyConn(id): keys.Conn(id), keys.LegacyConnFence(id): keys.ConnFence(id)} {
			if err := c.RenameNX(ctx, from, to).Err(); err != nil && err.Error() != "ERR no such key" {
				return 0, fmt.Errorf("move connection %s: %w", id, err)
			}
		}
		if err := c.SAdd(ctx, keys.Conns(), id).Err(); err != nil {
			return 0, fmt.Errorf("move connection %s: %w", id, err)
		}
		meta, err := c.HGet(ctx, keys.Conn(id), fieldMeta).Result()
		if err != nil && !rdb.IsNil(err) {
			return 0, fmt.Errorf("move connection %s: %w", id, err)
		}
		var conn Connection
		if json.Unmarshal([]byte(meta), &conn) == nil && conn.Status != "" && conn.Status != StatusOK {
			if _, err := states.SetFirst(ctx, id, conn.Status, conn.Reason); err != nil {
				return 0, err
			}
		}
	}
	if len(ids) > 0 {
		if err := c.Del(ctx, keys.LegacyConns()).Err(); err != nil {
			return 0, fmt.Errorf("move connections: %w", err)
		}
	}
	return len(ids), nil
}

// moveLegacyPauses turns the engine's old hash of pauses into connstate
// records.
func moveLegacyPauses(ctx context.Context, c redis.UniversalClient, keys rdb.Keys, states *connstate.States) error {
	paused, err := c.HGetAll(ctx, keys.LegacyPauses()).Result()
	if err != nil {
		return fmt.Errorf("move pauses: %w", err)
	}
	for id, reason := range paused {
		if _, err := states.SetFirst(ctx, id, connstate.NeedsReauth, reason); err != nil {
			return err
		}
	}
	if len(paused) > 0 {
		return c.Del(ctx, keys.LegacyPauses()).Err()
	}
	return nil
}
