package events

import (
	"github.com/nats-io/nats-server/v2/server"
)

// The NATS users of miniray's roles. Each role gets the least it needs: a job can
// add events, task_lost excepted, but not read, delete or purge anything; the dashboard can read the
// stream and keep the bucket but not delete or purge the stream; the admin (the
// collector) provisions the stream and the bucket and may do anything.
const (
	UserAdmin     = "admin"
	UserDashboard = "dashboard"
	UserJob       = "job"
)

// Passwords are the passwords of the roles' users on the embedded server. A role
// with no password has no user and cannot connect. The dashboard's and the job's
// may be bcrypt hashes (starting with $2), which the server compares against; the
// admin's must be plain, since the collector connects with it.
type Passwords struct {
	Admin     string
	Dashboard string
	Job       string
}

// Enabled reports whether any role has a password, which turns authentication on.
func (p Passwords) Enabled() bool {
	return p.Admin != "" || p.Dashboard != "" || p.Job != ""
}

// LostSubjects matches the subjects of task_lost events, which only the collector
// publishes: a job that could send them could mark any other job as dead.
const LostSubjects = SubjectPrefix + ".*.*." + string(TaskLost)

// JobPermissions are what a job may do: publish events other than task_lost and
// receive the acknowledgements of its publishes, which JetStream sends to the job's
// inbox.
func JobPermissions() *server.Permissions {
	return &server.Permissions{
		Publish: &server.SubjectPermission{
			Allow: []string{StreamSubjects},
			Deny:  []string{LostSubjects},
		},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
	}
}

// DashboardPermissions are what the dashboard may do: look up the stream and the
// bucket, replay the stream with ordered consumers, get single messages, and read
// and write the bucket. Stream deletion, purges and message deletion are not
// allowed; nor is publishing events.
func DashboardPermissions() *server.Permissions {
	const api = "$JS.API."
	var allow []string
	for _, stream := range []string{StreamName, "KV_" + BucketName} {
		allow = append(allow,
			api+"STREAM.INFO."+stream,
			api+"CONSUMER.CREATE."+stream,
			api+"CONSUMER.CREATE."+stream+".>",
			api+"CONSUMER.INFO."+stream+".*",
			api+"CONSUMER.DELETE."+stream+".*",
			api+"CONSUMER.MSG.NEXT."+stream+".*",
			api+"STREAM.MSG.GET."+stream,
			api+"DIRECT.GET."+stream,
			api+"DIRECT.GET."+stream+".>",
			// Replies to the server's flow control of push consumers (KV watchers).
			"$JS.FC."+stream+".>",
		)
	}
	allow = append(allow, api+"INFO", "$KV."+BucketName+".>")
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: allow},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
	}
}

// users returns the server's users for the roles that have a password. The admin
// has no permissions set, which the server reads as "everything".
func (p Passwords) users() []*server.User {
	var users []*server.User
	add := func(name, password string, perms *server.Permissions) {
		if password != "" {
			users = append(users, &server.User{
				Username:    name,
				Password:    password,
				Permissions: perms,
			})
		}
	}
	add(UserAdmin, p.Admin, nil)
	add(UserDashboard, p.Dashboard, DashboardPermissions())
	add(UserJob, p.Job, JobPermissions())
	return users
}
