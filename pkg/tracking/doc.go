// Package tracking is what a job imports to report its lifecycle to miniray.
//
// Wrap a job function with [Training], [Inference], [Tuning] or [Func]; calling the
// wrapped function publishes task_submitted and task_started, then whatever the job
// reports through [FromContext], then task_completed, task_failed or task_cancelled:
//
//	train := tracking.Training(trainModel, tracking.WithName("iris"))
//	acc, err := train(ctx, cfg)
//	defer tracking.Close(context.Background())
//
// Tracking never breaks the job: events are queued in memory and published in the
// background by a [Client], so reporting progress costs no network round trip, and a
// NATS server that is down or slow only delays the events. What NATS cannot take in
// time goes to a spool file on local disk, in order, and is sent from there; a
// progress report waits for room in a full queue at most MINIRAY_PUBLISH_WAIT (see
// [WithPublishWait]). The sender keeps many publishes in flight at once, and counts
// an event as acknowledged only when it and every event before it are: a failed
// publish is sent again before anything newer counts. [Client.Flush] and
// [Client.Close] wait, within their context, for JetStream to acknowledge
// everything queued so far: call one of them before a short-lived program exits.
//
// Every event carries a unique id that is also its JetStream message id, so a retried
// publish is dropped by the server and, outside its duplicate window, by the
// projection.
package tracking
