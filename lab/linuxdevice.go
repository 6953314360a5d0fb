package lab

// LinuxDeviceConfig configures the Linux control device: a server on the
// Linux stack with the lwIP device's close behaviour.
type LinuxDeviceConfig struct {
	// Listen is the address and port to serve, "192.168.100.99:80".
	Listen string `json:"listen"`
	// Close says how a connection ends once the response is sent.
	Close CloseMode `json:"close"`
	// Size is the response body size.
	Size int `json:"size"`
}

// DeviceEvent is one line of a device's JSON Lines output (device.log).
// Both devices write the fields they know; the lwIP device adds pcb states
// to its status lines.
type DeviceEvent struct {
	Event  string  `json:"event"`
	Time   float64 `json:"time"`
	Remote string  `json:"remote,omitempty"`
	How    string  `json:"how,omitempty"`
	Err    string  `json:"err,omitempty"`
	State  string  `json:"state,omitempty"`
	Final  bool    `json:"final,omitempty"`
	// Counters, in status lines.
	Accepted    int `json:"accepted,omitempty"`
	Requests    int `json:"requests,omitempty"`
	Responses   int `json:"responses,omitempty"`
	Closed      int `json:"closed,omitempty"`
	Aborted     int `json:"aborted,omitempty"`
	ResetByPeer int `json:"reset_by_peer,omitempty"`
	Errors      int `json:"errors,omitempty"`
	TimeWait    int `json:"time_wait,omitempty"`
	Active      int `json:"active,omitempty"`
	// Ready lines of the lwIP device.
	LwIP     string `json:"lwip,omitempty"`
	TCPMSLms int    `json:"tcp_msl_ms,omitempty"`
	// PoolKilled counts pcbs the ESP8266-like pool freed, by state.
	PoolKilled map[string]int `json:"pool_killed,omitempty"`
	TWExpired  int            `json:"tw_expired,omitempty"`
	// BusyDropped counts the acknowledgments of its FIN the lwIP device
	// did not take in (-busyclose).
	BusyDropped int   `json:"busy_dropped,omitempty"`
	PCBs        []PCB `json:"pcbs,omitempty"`
}

// PCB is one lwIP protocol control block in a status line.
type PCB struct {
	Remote string `json:"remote"`
	State  string `json:"state"`
}
