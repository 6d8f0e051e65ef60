"""What MLflow holds of a study: the tracker (tracker), a supervised worker's relayed writes (relay), the UI's saved
view (review_view), the study summary (summary), the best model (best_model) and how it is served (serving).

Layer 6: imports study, training, search, api and the base modules.
"""
