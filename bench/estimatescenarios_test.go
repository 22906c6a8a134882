package bench

import (
	"context"
	"strings"
	"testing"
)

// The scenarios run end to end on a tiny tree; the probe counts exactly
// what the final pass changes, and after quiet catch-ups history alone
// expects nothing of the burst.
func TestEstimateScenarios(t *testing.T) {
	res, err := EstimateScenarios(context.Background(), ScenarioConfig{Dir: t.TempDir(), Scale: 0.003, Seed: 1, Names: []string{"bursty", "shrinking"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 2 {
		t.Fatalf("rows %+v", res.Rows)
	}
	for _, row := range res.Rows {
		if row.ProbePaths != row.Paths || row.Paths == 0 {
			t.Errorf("%s: the probe counted %d paths, the final pass changed %d", row.Scenario, row.ProbePaths, row.Paths)
		}
		if row.Final <= 0 || row.FinalVerify <= row.Final || row.ProbeWin.Seconds <= row.Probe.Seconds {
			t.Errorf("%s: times %+v", row.Scenario, row)
		}
	}
	if b := res.Rows[0]; b.Scenario != "bursty" || b.HistoryPaths > float64(b.Paths)/10 {
		t.Errorf("bursty: history alone expected %.0f paths of %d", b.HistoryPaths, b.Paths)
	}
	var sb strings.Builder
	res.Markdown(&sb)
	t.Logf("\n%s", sb.String())
	if !strings.Contains(sb.String(), "| bursty | ") || !strings.Contains(sb.String(), "final + verify") {
		t.Errorf("table:\n%s", sb.String())
	}
	if _, err := EstimateScenarios(context.Background(), ScenarioConfig{Dir: t.TempDir(), Scale: 0.003, Names: []string{"nosuch"}}); err == nil {
		t.Error("an unknown scenario ran")
	}
}
