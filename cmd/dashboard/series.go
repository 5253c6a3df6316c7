package main

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/projection"
)

// getSeries answers /api/tasks/{id}/metrics: every point of every metric the task
// reported, for its charts. It takes no query parameters: there is no sampling to
// ask for.
func getSeries(st *state) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := taskParam(c, nil)
		if !ok {
			return
		}
		s, found := st.proj.Series(id)
		if !found {
			apiError(c, http.StatusNotFound, "task "+id+" not found")
			return
		}
		c.JSON(http.StatusOK, s)
	}
}

// trialsParams are the query parameters of /api/tasks/{id}/trials.
var trialsParams = map[string]bool{"metric": true, "order": true, "curves": true}

// getTrials answers /api/tasks/{id}/trials: the task's child tasks ranked best
// first by a metric (?metric=, ?order=min|max), with the curves of the best ones
// (?curves=, how many).
func getTrials(st *state) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := taskParam(c, trialsParams)
		if !ok {
			return
		}
		values := c.Request.URL.Query()
		q := projection.TrialsQuery{Metric: values.Get("metric"), Order: values.Get("order")}
		var err error
		if q.Curves, err = intParam(values.Get("curves"), "curves"); err != nil {
			apiError(c, http.StatusBadRequest, err.Error())
			return
		}
		if values.Get("curves") != "" && q.Curves == 0 {
			apiError(c, http.StatusBadRequest, "curves: 0 is not between 1 and "+
				strconv.Itoa(projection.MaxTrialCurves))
			return
		}
		tr, err := st.proj.Trials(id, q)
		switch {
		case errors.Is(err, projection.ErrNoSuchTask):
			apiError(c, http.StatusNotFound, "task "+id+" not found")
		case err != nil:
			apiError(c, http.StatusBadRequest, err.Error())
		default:
			c.JSON(http.StatusOK, tr)
		}
	}
}

// taskParam returns the task id of the path after checking it and the query's
// parameters against allowed. On a bad request it has answered, and returns false.
func taskParam(c *gin.Context, allowed map[string]bool) (string, bool) {
	for k, v := range c.Request.URL.Query() {
		switch {
		case !allowed[k]:
			apiError(c, http.StatusBadRequest, "unknown query parameter "+strconv.Quote(k))
			return "", false
		case len(v) > 1:
			apiError(c, http.StatusBadRequest, "query parameter "+k+" given more than once")
			return "", false
		}
	}
	id := c.Param("id")
	if err := events.ValidateTaskID(id); err != nil {
		apiError(c, http.StatusBadRequest, err.Error())
		return "", false
	}
	return id, true
}
