"""The flood nowcast: live rain and river gauges driven through the flood model a few hours ahead.

    inputs     NowcastInputs (horizon, resolution, lookback, the rain assumed ahead, drainage)
    readings   the latest usable readings of rain gauges, river stage gauges and waterlogging points
    forcing    readings -> FloodInputs (an IDW rain field, stage boundaries, probes)
    process    NowcastProcess, "flood-nowcast": the flood run plus a "forecast" layer of the points
    warnings   a finished nowcast job -> forecast events (kinds "forecast-warning", "forecast-alarm")
    trigger    NowcastTrigger: runs nowcasts on a schedule while it rains and when an alarm opens
"""
