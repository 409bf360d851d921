"""basket (basket-master / basket-info): each user's basket."""
