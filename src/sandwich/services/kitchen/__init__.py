"""kitchen (the seeds' assignment system + food_point app): food points, ingredient stock, assignment
of paid orders to food points, cooks' actions."""
