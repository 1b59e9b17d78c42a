"""Climate data for the model: reading, calendars, preprocessing, windows, synthetic data.

Nothing here touches the network; every reader works on local files or stores.
"""
