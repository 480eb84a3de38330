package broker

import (
	"context"
	"encoding/hex"
	"time"
)

// TopicIncarnation returns the topic's ID on the embedded broker, in hex, or
// "" when the topic does not exist. The broker keeps its log in memory, so a
// restarted broker, or a topic deleted and created again, has another ID:
// pass it to the Pipeline with [Incarnations] so that batches cut from the
// new log never share an identity with those of the old one at the same
// offsets. Safe for concurrent use while the broker runs.
func (b *Broker) TopicIncarnation(topic string) string {
	ti := b.c.TopicInfo(topic)
	if ti == nil {
		return ""
	}
	return hex.EncodeToString(ti.TopicID[:])
}

// PartitionBacklog is what a consumer group has not yet committed of one
// partition: the offsets [Committed, HighWatermark).
type PartitionBacklog struct {
	Topic     string
	Partition int32
	// Committed is the group's next offset to consume (the log start when
	// it committed nothing).
	Committed     int64
	HighWatermark int64
}

// Messages is how many messages the group has not committed.
func (p PartitionBacklog) Messages() int64 { return p.HighWatermark - p.Committed }

// Backlog returns, for each partition of topics holding messages that group
// has not committed, its backlog. Safe for concurrent use while the broker
// runs.
func (b *Broker) Backlog(group string, topics []string) []PartitionBacklog {
	gi := b.c.GroupInfo(group)
	var out []PartitionBacklog
	for _, t := range topics {
		for _, pi := range b.c.PartitionInfos(t) {
			committed := pi.LogStartOffset
			if gi != nil {
				if c, ok := gi.Commits[t][pi.Partition]; ok && c.Offset > committed {
					committed = c.Offset
				}
			}
			if committed < pi.HighWatermark {
				out = append(out, PartitionBacklog{Topic: t, Partition: pi.Partition, Committed: committed, HighWatermark: pi.HighWatermark})
			}
		}
	}
	return out
}

// Drain waits until group has committed every message the broker held when
// Drain was called, polling every interval, or until ctx is done. It
// returns what is still not committed (nil when everything is). The broker
// keeps its log in memory only: connlog serve drains it before stopping, so
// that published lines are stored rather than dropped with the broker.
func (b *Broker) Drain(ctx context.Context, group string, topics []string, interval time.Duration) []PartitionBacklog {
	type partition struct {
		topic string
		id    int32
	}
	target := map[partition]int64{}
	for _, p := range b.Backlog(group, topics) {
		target[partition{p.Topic, p.Partition}] = p.HighWatermark
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		left := b.Backlog(group, topics)
		done := true
		for _, p := range left {
			if hwm, ok := target[partition{p.Topic, p.Partition}]; ok && p.Committed < hwm {
				done = false
			}
		}
		if done || len(left) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return left
		case <-t.C:
		}
	}
}
