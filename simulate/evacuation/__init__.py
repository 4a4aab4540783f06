"""Evacuation scenarios: who leaves a hazard zone, by which roads, to which shelters, and when.

A mesoscopic queue model in the spirit of MATSim's QSim on the twin's road network;
see `model.py` for the data flow between the modules.
"""
