package wire

// Result is the wire form of a pass's result (record.Result), carried in
// PassResult. Its JSON names are part of msync's protocol: a peer of the
// same protocol version reads them, so never rename one (adding a field
// is compatible: a peer ignores names it does not know).
type Result struct {
	Stats       Stats     `json:"stats"`
	Problems    []Problem `json:"problems,omitempty"`
	NotQuiet    []string  `json:"not_quiet,omitempty"`
	Committed   bool      `json:"committed"`
	TrustedDest bool      `json:"trusted_dest,omitempty"`
	Queue       *Queue    `json:"queue,omitempty"`
}

// Stats is the wire form of a pass's statistics (record.Stats).
type Stats struct {
	Entries   int64 `json:"entries"`
	Files     int64 `json:"files"`
	Dirs      int64 `json:"dirs"`
	Symlinks  int64 `json:"symlinks"`
	Specials  int64 `json:"specials"`
	SrcBytes  int64 `json:"src_bytes"`
	Created   int64 `json:"created"`
	Updated   int64 `json:"updated"`
	MetaOnly  int64 `json:"meta_only"`
	HardLinks int64 `json:"hardlinks"`
	Deleted   int64 `json:"deleted"`
	Kept      int64 `json:"extraneous"`
	DataBytes int64 `json:"data_bytes"`
	Literal   int64 `json:"literal_bytes"`
	Matched   int64 `json:"matched_bytes"`
	Written   int64 `json:"written_bytes"`
	WireBytes int64 `json:"wire_bytes"`
	Appended  int64 `json:"appended"`
	Deltas    int64 `json:"deltas"`
	Failed    int64 `json:"failed"`
	Vanished  int64 `json:"vanished"`
	Skipped   int64 `json:"skipped"`
	Held      int64 `json:"held,omitempty"`
	Temps     int64 `json:"temps_removed"`
}

// Problem is the wire form of a path a pass could not handle (record.Problem).
type Problem struct {
	Path     string `json:"path"`
	Err      string `json:"error"`
	Vanished bool   `json:"vanished,omitempty"`
	Skipped  bool   `json:"skipped,omitempty"`
}

// Queue is the wire form of the queued messages on each side (record.Queue).
type Queue struct {
	Src int64 `json:"src"`
	Dst int64 `json:"dst"`
}
