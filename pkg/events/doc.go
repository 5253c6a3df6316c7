// Package events defines miniray's event model and everything needed to put events on
// NATS JetStream and read them back.
//
// Every lifecycle step of a job (submitted, started, progress, completed, failed,
// cancelled, lost) is one [Event]. Events are published to one subject per task and
// event type, [Subject], inside the stream [StreamName], so that one task's history is
// a subject filter away and the raw log is readable with the nats CLI.
//
// Guarantees and non-guarantees:
//
//   - Every event carries a unique EventID, sent as the Nats-Msg-Id header. JetStream
//     drops a second copy published within the stream's duplicate window; a copy that
//     arrives later is stored again, so readers must be idempotent by EventID.
//   - Events of one task may be stored out of timestamp order (retries, reconnects);
//     readers order them by Timestamp, not by stream sequence.
//   - [Provision] creates the stream and the projection's KV bucket, or checks and
//     updates them; it never replaces a stream whose configuration conflicts.
package events
