package statuspage

import (
	_ "embed"
	"fmt"
	"html/template"
	"time"
)

//go:embed page.html
var pageHTML string

//go:embed login.html
var loginHTML string

var (
	pageTmpl  = template.Must(template.New("page").Funcs(template.FuncMap{"dur": duration, "rfc3339": rfc3339}).Parse(pageHTML))
	loginTmpl = template.Must(template.New("login").Parse(loginHTML))
)

// view is the page's template data.
type view struct {
	Snapshot
	Now time.Time
}

// Since is how long ago t was, as the page shows a duration.
func (v view) Since(t time.Time) string { return duration(v.Now.Sub(t)) }

// duration formats d as H:MM:SS, or M:SS under an hour.
func duration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }
