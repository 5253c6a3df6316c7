package events_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/projection"
)

var testPasswords = events.Passwords{
	Admin:     "admin-secret-0123",
	Dashboard: "dashboard-secret-0123",
	Job:       "job-secret-0123",
}

// authServer starts an embedded server with the roles' users and provisions the
// store as the admin.
func authServer(t *testing.T) (*events.Server, jetstream.JetStream) {
	t.Helper()
	srv, err := events.StartServer(events.ServerConfig{
		Listen:       "127.0.0.1:0",
		DataDir:      t.TempDir(),
		ReadyTimeout: 30 * time.Second,
		Passwords:    testPasswords,
	})
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	_, js := connectAs(t, srv.ClientURL(), events.UserAdmin, testPasswords.Admin)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := events.Provision(ctx, js, events.DefaultStoreConfig()); err != nil {
		t.Fatalf("provision as admin: %v", err)
	}
	return srv, js
}

// violations collects the permission errors the server sends a connection.
type violations struct {
	mu   sync.Mutex
	msgs []string
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrPermissionViolation) {
		v.mu.Lock()
		v.msgs = append(v.msgs, err.Error())
		v.mu.Unlock()
	}
}

// saw waits a little for a violation that names subject.
func (v *violations) saw(subject string) bool {
	for range 50 {
		v.mu.Lock()
		for _, m := range v.msgs {
			if strings.Contains(m, subject) {
				v.mu.Unlock()
				return true
			}
		}
		v.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func connectAs(t *testing.T, url, user, password string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, _ := connectWatched(t, url, user, password)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

func connectWatched(t *testing.T, url, user, password string) (*nats.Conn, *violations) {
	t.Helper()
	v := &violations{}
	nc, err := nats.Connect(url, nats.UserInfo(user, password), nats.ErrorHandler(v.handler))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc, v
}

// refused sends a JetStream API request that the role must not make and checks
// that it got no answer and that the server reported a permissions violation.
func refused(t *testing.T, nc *nats.Conn, v *violations, subject string) {
	t.Helper()
	msg, err := nc.Request(subject, nil, 2*time.Second)
	if err == nil {
		t.Errorf("%s: got answer %s, want it refused", subject, msg.Data)
		return
	}
	if !v.saw(subject) {
		t.Errorf("%s: got %v and no permissions violation", subject, err)
	}
}

// refusedAll runs [refused] on every subject at once: each waits out a timeout.
func refusedAll(t *testing.T, nc *nats.Conn, v *violations, subjects []string) {
	t.Helper()
	t.Run("refused", func(t *testing.T) {
		for _, subject := range subjects {
			t.Run(subject, func(t *testing.T) {
				t.Parallel()
				refused(t, nc, v, subject)
			})
		}
	})
}

func streamMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(t.Context(), events.StreamName)
	if err != nil {
		t.Fatalf("stream info as admin: %v", err)
	}
	return s.CachedInfo().State.Msgs
}

func TestJobCredentials(t *testing.T) {
	srv, admin := authServer(t)
	nc, v := connectWatched(t, srv.ClientURL(), events.UserJob, testPasswords.Job)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Publish(t.Context(), "$KV."+events.BucketName+".t1", []byte("{}")); err != nil {
		t.Fatalf("admin writes the bucket: %v", err)
	}

	t.Run("publishes events that land", func(t *testing.T) {
		id := events.NewTaskID(events.TypeTraining)
		for _, et := range []events.Type{events.TaskSubmitted, events.TaskStarted} {
			e := events.New(et, id, events.TypeTraining, "auth", events.Data{})
			if _, err := events.Publish(t.Context(), js, e); err != nil {
				t.Fatalf("publish %s as job: %v", et, err)
			}
		}
		if got := streamMsgs(t, admin); got != 2 {
			t.Fatalf("stream holds %d events, want 2", got)
		}
	})

	api := "$JS.API."
	refusedAll(t, nc, v, []string{
		api + "STREAM.DELETE." + events.StreamName,
		api + "STREAM.PURGE." + events.StreamName,
		api + "STREAM.MSG.DELETE." + events.StreamName,
		api + "STREAM.INFO.KV_" + events.BucketName,
		api + "DIRECT.GET.KV_" + events.BucketName + ".$KV." + events.BucketName + ".t1",
		api + "STREAM.MSG.GET.KV_" + events.BucketName,
		api + "CONSUMER.CREATE." + events.StreamName,
	})

	t.Run("cannot open the bucket", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		if kv, err := js.KeyValue(ctx, events.BucketName); err == nil {
			t.Fatalf("got bucket %s, want an error", kv.Bucket())
		}
	})

	t.Run("cannot watch the bucket", func(t *testing.T) {
		sub, err := nc.SubscribeSync("$KV." + events.BucketName + ".>")
		if err == nil {
			defer sub.Unsubscribe()
		}
		if !v.saw("$KV." + events.BucketName) {
			t.Fatal("subscribing to the bucket's subjects: no permissions violation")
		}
	})

	t.Run("cannot publish elsewhere", func(t *testing.T) {
		if err := nc.Publish("$KV."+events.BucketName+".t1", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if !v.saw("Publish to \"$KV." + events.BucketName) {
			t.Fatal("writing the bucket: no permissions violation")
		}
	})

	t.Run("cannot mark a task lost", func(t *testing.T) {
		id := events.NewTaskID(events.TypeTraining)
		e := events.New(events.TaskLost, id, events.TypeTraining, "auth", events.Data{})
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		if _, err := events.Publish(ctx, js, e); err == nil {
			t.Fatal("task_lost published as job, want it refused")
		}
		if !v.saw("Publish to \"" + e.Subject()) {
			t.Fatal("publishing task_lost: no permissions violation")
		}
	})

	// After all the refused requests the stream is whole.
	if got := streamMsgs(t, admin); got != 2 {
		t.Fatalf("stream holds %d events after the refused requests, want 2", got)
	}
}

func TestDashboardCredentials(t *testing.T) {
	srv, admin := authServer(t)
	id := events.NewTaskID(events.TypeTraining)
	for _, et := range []events.Type{events.TaskSubmitted, events.TaskStarted, events.TaskCompleted} {
		e := events.New(et, id, events.TypeTraining, "auth", events.Data{})
		if _, err := events.Publish(t.Context(), admin, e); err != nil {
			t.Fatalf("publish %s: %v", et, err)
		}
	}
	nc, v := connectWatched(t, srv.ClientURL(), events.UserDashboard, testPasswords.Dashboard)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("replays the stream and writes the bucket", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		if _, err := events.Ensure(ctx, js, events.DefaultStoreConfig()); err != nil {
			t.Fatalf("ensure as dashboard: %v", err)
		}
		proj := projection.New(slog.New(slog.DiscardHandler))
		r := projection.NewReplayer(js, proj, slog.New(slog.DiscardHandler))
		r.FlushInterval = 20 * time.Millisecond
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(runCtx) }()
		if err := r.WaitReady(ctx); err != nil {
			t.Fatalf("replay as dashboard: %v", err)
		}
		if task, ok := proj.Get(id); !ok || task.Status != projection.Completed {
			t.Fatalf("task after replay: got %+v %v, want COMPLETED", task, ok)
		}
		stop()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("replayer stopped: %v", err)
		}
		kv, err := admin.KeyValue(ctx, events.BucketName)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Get(ctx, id); err != nil {
			t.Fatalf("task state in the bucket, read as admin: %v", err)
		}
	})

	api := "$JS.API."
	refusedAll(t, nc, v, []string{
		api + "STREAM.DELETE." + events.StreamName,
		api + "STREAM.PURGE." + events.StreamName,
		api + "STREAM.MSG.DELETE." + events.StreamName,
		api + "STREAM.DELETE.KV_" + events.BucketName,
		api + "STREAM.UPDATE." + events.StreamName,
	})

	t.Run("cannot publish events", func(t *testing.T) {
		e := events.New(events.TaskFailed, id, events.TypeTraining, "auth", events.Data{})
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		if _, err := events.Publish(ctx, js, e); err == nil {
			t.Fatal("published an event as the dashboard, want it refused")
		}
	})

	if got := streamMsgs(t, admin); got != 3 {
		t.Fatalf("stream holds %d events, want 3", got)
	}
}

func TestWrongPasswordRefused(t *testing.T) {
	srv, _ := authServer(t)
	for _, c := range []struct{ user, password string }{
		{events.UserJob, "wrong-password-0123"},
		{"", ""},
		{"nobody", testPasswords.Admin},
	} {
		opts := []nats.Option{}
		if c.user != "" {
			opts = append(opts, nats.UserInfo(c.user, c.password))
		}
		nc, err := nats.Connect(srv.ClientURL(), opts...)
		if err == nil {
			nc.Close()
			t.Errorf("user %q: connected, want refused", c.user)
			continue
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("user %q: got %v, want an authorization error", c.user, err)
		}
	}
}
