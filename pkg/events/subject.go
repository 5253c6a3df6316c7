package events

import (
	"fmt"
	"strings"
)

// SubjectPrefix is the first two tokens of every event subject.
const SubjectPrefix = "miniray.tasks"

// StreamSubjects is the subject filter of the stream: every event subject.
const StreamSubjects = SubjectPrefix + ".>"

// Subject returns miniray.tasks.<task type>.<task id>.<event type>, the subject an
// event of that task is published to. One task's whole history is
// [TaskFilter] away.
func Subject(tt TaskType, taskID string, et Type) string {
	return SubjectPrefix + "." + string(tt) + "." + taskID + "." + string(et)
}

// TaskFilter returns the subject filter that matches every event of one task.
func TaskFilter(tt TaskType, taskID string) string {
	return SubjectPrefix + "." + string(tt) + "." + taskID + ".*"
}

// ParseSubject splits an event subject into its task type, task id and event type.
func ParseSubject(subj string) (TaskType, string, Type, error) {
	rest, ok := strings.CutPrefix(subj, SubjectPrefix+".")
	if !ok {
		return "", "", "", fmt.Errorf("subject %q: not under %s", subj, SubjectPrefix)
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 {
		return "", "", "", fmt.Errorf("subject %q: want %s.<type>.<task id>.<event type>",
			subj, SubjectPrefix)
	}
	return TaskType(parts[0]), parts[1], Type(parts[2]), nil
}
