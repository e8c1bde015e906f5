package gateway

import (
	"context"
	"log/slog"
)

// guardDenialMsg is the message of the line the guard logs for each
// request it refuses (middleware: reason, status, method, path, and when
// known iss, kid, alg and the internal cause, err).
const guardDenialMsg = "request denied"

// guardDenialDetails are the attributes of the guard's denial line that the
// access line does not have of its own; it has the reason, status, method
// and path already.
var guardDenialDetails = map[string]bool{"iss": true, "kid": true, "alg": true, "err": true}

// denialsToAccessLog returns the logger the guard is given: log, except
// that a denial of a request that gets an access line is not a line of its
// own. Its details (guardDenialDetails) go onto the request's access
// record and are written on the access line, so a denied request is one
// line. Everything else the guard logs (keys loaded or refreshed,
// discovery, introspection, replay store) passes through unchanged, and so
// does a denial when the access line is not written (log_level above info:
// the guard's Warn for a 503 stays) or when there is no access record. nil
// stays nil (the guard's default, a discarding logger).
func denialsToAccessLog(log *slog.Logger) *slog.Logger {
	if log == nil {
		return nil
	}
	return slog.New(denialLog{log.Handler()})
}

// denialLog is the slog.Handler of denialsToAccessLog.
type denialLog struct{ slog.Handler }

// Handle moves a denial's details onto the access record in ctx. The guard
// logs from the goroutine serving the request, the only one that touches
// the record.
func (h denialLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == guardDenialMsg {
		if rec := recordFrom(ctx); rec != nil && h.Handler.Enabled(ctx, slog.LevelInfo) {
			r.Attrs(func(a slog.Attr) bool {
				if guardDenialDetails[a.Key] {
					rec.denial = append(rec.denial, a)
				}
				return true
			})
			return nil
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h denialLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	return denialLog{h.Handler.WithAttrs(attrs)}
}

func (h denialLog) WithGroup(name string) slog.Handler {
	return denialLog{h.Handler.WithGroup(name)}
}
