package emulator

// DemoDevices returns descriptions of the demo fleet: a smart plug, a
// dimmable light, an RGB lamp, a thermostat, a garage door, a door lock and
// an environment sensor. They have no id, owner or times; each call returns
// fresh values that the caller may change and store.
func DemoDevices() []*Device {
	onOff := Property{ID: "on", Name: "On", Datatype: DatatypeBoolean, Settable: true}
	return []*Device{
		{
			Name: "Kitchen plug",
			Type: "plug",
			Nodes: []Node{
				{ID: "switch", Name: "Switch", Type: "Power switch", Properties: []Property{
					onOff,
				}},
				{ID: "meter", Name: "Meter", Type: "Power meter", Properties: []Property{
					{ID: "power", Name: "Power", Datatype: DatatypeFloat, Unit: "W", Format: "0:3680"},
					{ID: "energy", Name: "Energy", Datatype: DatatypeFloat, Unit: "kWh"},
				}},
			},
		},
		{
			Name: "Living room light",
			Type: "light",
			Nodes: []Node{
				{ID: "light", Name: "Light", Type: "Dimmable light", Properties: []Property{
					onOff,
					{ID: "brightness", Name: "Brightness", Datatype: DatatypeInteger, Unit: "%", Format: "0:100", Settable: true},
				}},
			},
		},
		{
			Name: "Bedroom lamp",
			Type: "rgb-lamp",
			Nodes: []Node{
				{ID: "light", Name: "Light", Type: "Color light", Properties: []Property{
					onOff,
					{ID: "color", Name: "Color", Datatype: DatatypeColor, Format: ColorRGB, Settable: true},
				}},
			},
		},
		{
			Name: "Hallway thermostat",
			Type: "thermostat",
			Nodes: []Node{
				{ID: "thermostat", Name: "Thermostat", Type: "Heating and cooling", Properties: []Property{
					{ID: "mode", Name: "Mode", Datatype: DatatypeEnum, Format: "off,heat,cool,auto", Settable: true},
					{ID: "target", Name: "Target temperature", Datatype: DatatypeFloat, Unit: "°C", Format: "5:30:0.5", Settable: true},
					{ID: "temperature", Name: "Temperature", Datatype: DatatypeFloat, Unit: "°C"},
				}},
			},
		},
		{
			Name: "Garage door",
			Type: "garage-door",
			Nodes: []Node{
				{ID: "door", Name: "Door", Type: "Door opener", Properties: []Property{
					{ID: "command", Name: "Command", Datatype: DatatypeEnum, Format: "open,close", Settable: true},
					{ID: "state", Name: "State", Datatype: DatatypeEnum, Format: "open,opening,closed,closing"},
				}},
			},
		},
		{
			Name: "Front door lock",
			Type: "lock",
			Nodes: []Node{
				{ID: "lock", Name: "Lock", Type: "Door lock", Properties: []Property{
					{ID: "locked", Name: "Locked", Datatype: DatatypeBoolean, Settable: true},
					{ID: "battery", Name: "Battery", Datatype: DatatypeInteger, Unit: "%", Format: "0:100"},
				}},
			},
		},
		{
			Name: "Office sensor",
			Type: "sensor",
			Nodes: []Node{
				{ID: "climate", Name: "Climate", Type: "Environment sensor", Properties: []Property{
					{ID: "temperature", Name: "Temperature", Datatype: DatatypeFloat, Unit: "°C"},
					{ID: "humidity", Name: "Humidity", Datatype: DatatypeFloat, Unit: "%", Format: "0:100"},
					{ID: "co2", Name: "CO₂", Datatype: DatatypeInteger, Unit: "ppm", Format: "0:5000"},
				}},
			},
		},
	}
}
