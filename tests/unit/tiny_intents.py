"""Three tiny intents of six utterances each, for trainer tests that need a few seconds."""

TEXTS = {
    "weather": [
        "will it rain tomorrow",
        "is it cold outside",
        "forecast for the weekend",
        "do I need an umbrella",
        "how hot is it in paris",
        "is it sunny right now",
    ],
    "music": [
        "play some jazz",
        "put on my playlist",
        "play a song by queen",
        "shuffle my favourite songs",
        "turn on relaxing music",
        "next track please",
    ],
    "alarm": [
        "wake me up at seven",
        "set an alarm for 6 am",
        "cancel my alarm",
        "alarm for tomorrow at five",
        "snooze the alarm",
        "what alarms are set",
    ],
}
