// Package projection folds miniray's event stream into the current state of every
// task: an in-memory read model that the dashboard serves, mirrored into the
// MINIRAY_TASKS KV bucket.
//
// The fold is idempotent and independent of arrival order. An event whose id the task
// has already seen changes nothing, whether it arrives again a second or a month
// later. A task's state is a function of the set of its events, not of their order:
// its history is ordered by timestamp, its status comes from the latest terminal
// event if there is one, and a late progress event cannot overwrite a terminal status.
// Replaying the same stream therefore always gives the same states, which is what lets
// a dashboard start, stop and restart at any time.
//
// A message that is not a valid event is skipped and counted by kind; it never stops
// a replay and never touches another task.
//
// Every event a task applied stays readable, its data byte for byte as it arrived:
// a task keeps its events in one compact log (history.go), the data of most events
// in a binary form that renders back to the same JSON, and the duplicate check is an
// exact set of the event ids in that log. Lists are served from sorted orders that
// follow changes (listindex.go) rather than sorted for every request. The bucket is
// written once the replay has caught up (see [Replayer]).
package projection
